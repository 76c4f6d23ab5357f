"""The live event stream's reads (SQL in ``sql/queries/events.sql``): the events after a
cursor for a process's hub (``vq_core.event_hub``), and the replays of one job or of
the jobs matching a filter for a client that (re)connects.

Each event comes with the fields of its job that streams filter on (type, group,
priority, status, service), read in the same statement.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from vq_core.db.queries import sql
from vq_core.models import JobStatus, Priority
from vq_core.store.records import export

if TYPE_CHECKING:
    from vq_core.store.records.events import (
        EVENT_STATUS as EVENT_STATUS,
    )
    from vq_core.store.records.events import (
        FINAL_STATUSES as FINAL_STATUSES,
    )
    from vq_core.store.records.events import (
        StreamBatch as StreamBatch,
    )
    from vq_core.store.records.events import (
        StreamEvent as StreamEvent,
    )


def __getattr__(name: str) -> Any:
    # The records are made on first use (vq_core.store.records says why).
    return export("events", __name__, name)


def _event(row: dict[str, Any] | asyncpg.Record) -> StreamEvent:
    at = row["at"]
    if isinstance(at, str):  # from to_jsonb: ISO 8601
        at = datetime.fromisoformat(at)
    job_id = row["job_id"]
    priority, status = row["priority"], row["status"]
    from vq_core.store.records.events import StreamEvent

    return StreamEvent(
        id=int(row["id"]),
        job_id=job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id)),
        event=row["event"],
        at=at,
        worker_id=row["worker_id"],
        details=row["details"],
        job_type=row["job_type"],
        group_key=row["group_key"],
        priority=Priority(priority) if priority is not None else None,
        job_status=JobStatus(status) if status is not None else None,
        service=row["service"],
    )


class EventStreamStore:
    """The reads behind the live event stream; part of ``Store``."""

    pool: asyncpg.Pool

    async def event_stream_start(self) -> tuple[int, list[str]]:
        """The newest event id and the transactions in progress (xid8 as text)."""
        row = await self.pool.fetchrow(sql("event_stream_start"))
        assert row is not None
        return int(row["last_id"]), list(row["xip"])

    async def transactions_ended(self, xids: Sequence[str]) -> bool:
        """Whether every transaction of ``xids`` (xid8 as text) has committed or aborted."""
        ended: bool = await self.pool.fetchval(sql("event_stream_ended"), list(xids))
        return ended

    async def event_stream_batch(
        self, after: int, late: Sequence[int], waiting_for: Sequence[str], limit: int
    ) -> StreamBatch:
        """Up to ``limit`` events with ids above ``after`` or in ``late``, oldest first, and
        whether the transactions ``waiting_for`` had ended in the same snapshot."""
        row = await self.pool.fetchrow(
            sql("event_stream_batch"), after, list(late), limit, list(waiting_for)
        )
        assert row is not None
        from vq_core.store.records.events import StreamBatch

        return StreamBatch([_event(e) for e in row["events"]], list(row["xip"]), row["ended"])

    async def job_events_between(
        self, job_id: uuid.UUID, after: int, up_to: int, limit: int
    ) -> list[StreamEvent]:
        """One job's events with ``after < id <= up_to``, oldest first, at most ``limit``."""
        rows = await self.pool.fetch(sql("job_events_between"), job_id, after, up_to, limit)
        return [_event(r) for r in rows]

    async def events_between(
        self,
        after: int,
        up_to: int,
        limit: int,
        *,
        job_type: str | None = None,
        status: JobStatus | None = None,
        priority: Priority | None = None,
        group_key: str | None = None,
        service: str | None = None,
    ) -> list[StreamEvent]:
        """The events with ``after < id <= up_to`` of the jobs matching the filters (on the
        job row as it is now), oldest first, at most ``limit``."""
        rows = await self.pool.fetch(
            sql("events_between"),
            after,
            up_to,
            limit,
            job_type,
            status.value if status else None,
            int(priority) if priority is not None else None,
            group_key,
            service,
        )
        return [_event(r) for r in rows]

    async def job_stream_state(self, job_id: uuid.UUID) -> tuple[JobStatus, int] | None:
        """A job's status and its newest event's id (0: none); ``None``: no such job."""
        row = await self.pool.fetchrow(sql("job_stream_state"), job_id)
        if row is None:
            return None
        return JobStatus(row["status"]), int(row["last_id"] or 0)
