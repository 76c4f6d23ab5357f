"""Alert state and the queue readings the alert rules need (SQL in
``sql/queries/alerts.sql``).

The records here are what the store returns; ``vq_core.alerts`` decides with them
(the store does not import it). The evaluator reads and writes inside one transaction
that holds an advisory lock: ``Store.alert_transaction()`` yields that transaction's
operations as an ``AlertTransaction``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from vq_core.db.queries import sql
from vq_core.models import QueueConfig, WorkerInfo
from vq_core.store.records import export

# Any constant works as long as every vq process uses the same one (0x7651_0001 is
# the migration lock).
ALERT_LOCK_ID = 0x7651_0002
Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


if TYPE_CHECKING:
    from vq_core.store.records.alerts import (
        FIRING as FIRING,
    )
    from vq_core.store.records.alerts import (
        RESOLVED as RESOLVED,
    )
    from vq_core.store.records.alerts import (
        AlertRecord as AlertRecord,
    )
    from vq_core.store.records.alerts import (
        OutcomeReading as OutcomeReading,
    )
    from vq_core.store.records.alerts import (
        QueueReading as QueueReading,
    )
    from vq_core.store.records.alerts import (
        QueueSnapshot as QueueSnapshot,
    )


def __getattr__(name: str) -> Any:
    # The records are made on first use (vq_core.store.records says why).
    return export("alerts", __name__, name)


def _record(row: asyncpg.Record) -> AlertRecord:
    from vq_core.store.records.alerts import AlertRecord

    data = dict(row)
    data["details"] = data.get("details") or {}
    return AlertRecord(**data)


class AlertTransaction:
    """The evaluator's operations, all on the connection of one open transaction."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    async def try_lock(self) -> datetime | None:
        """Take the evaluator's lock until the transaction ends; the database's ``now()``
        if taken, ``None`` if another process holds it."""
        row = await self._conn.fetchrow(sql("alerts_try_lock"), ALERT_LOCK_ID)
        assert row is not None  # a SELECT without FROM always returns a row
        return row["now"] if row["locked"] else None

    async def read_snapshot(self, now: datetime, failure_window_s: float) -> QueueSnapshot:
        """Read the queue, workers, services and recent outcomes for the rules."""
        from vq_core.store.records.alerts import OutcomeReading, QueueReading, QueueSnapshot

        conn = self._conn
        queues = [QueueReading(**dict(r)) for r in await conn.fetch(sql("alert_queue_by_type"))]
        outcomes = [
            OutcomeReading(**dict(r))
            for r in await conn.fetch(sql("alert_outcomes_by_type"), failure_window_s)
        ]
        workers = [WorkerInfo(**dict(r)) for r in await conn.fetch(sql("list_workers"))]
        services = [dict(r) for r in await conn.fetch(sql("list_service_health"))]
        config = {
            r["job_type"]: QueueConfig(**dict(r))
            for r in await conn.fetch(sql("list_queue_config"))
        }
        return QueueSnapshot(now, queues, outcomes, workers, services, config)

    async def alerts_for_update(self, keys: Sequence[str]) -> dict[str, AlertRecord]:
        """Every firing alert plus the stored state of ``keys``, by key."""
        rows = await self._conn.fetch(sql("alerts_for_update"), list(keys))
        return {r["key"]: _record(r) for r in rows}

    async def write_alerts(self, records: Sequence[AlertRecord]) -> None:
        """Store the evaluator's decisions."""
        if not records:
            return
        await self._conn.executemany(
            sql("upsert_alert"),
            [
                (
                    r.key,
                    r.rule,
                    r.state,
                    r.summary,
                    r.details,
                    r.first_seen,
                    r.last_seen,
                    r.last_sent_at,
                    r.resolved_at,
                    r.send_count,
                )
                for r in records
            ],
        )

    async def prune_resolved(self, older_than_s: float) -> None:
        """Forget alerts resolved longer ago than ``older_than_s`` (worker ids come and go)."""
        await self._conn.execute(sql("prune_resolved_alerts"), older_than_s)


class AlertStore:
    """The methods on ``vq.alerts`` and the queue readings of alerts; part of ``Store``."""

    pool: asyncpg.Pool

    @contextlib.asynccontextmanager
    async def alert_transaction(self) -> AsyncIterator[AlertTransaction]:
        """One transaction for the alert evaluator: it commits when the block ends (and
        rolls back on an error), which also releases the lock ``try_lock`` took."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield AlertTransaction(conn)

    async def list_alerts(self, firing_only: bool = False, limit: int = 50) -> list[AlertRecord]:
        """Firing alerts, newest first, then (unless ``firing_only``) the latest resolutions."""
        rows = await self.pool.fetch(sql("list_alerts"), firing_only, max(1, limit))
        return [_record(r) for r in rows]

    async def count_firing_alerts(self) -> dict[str, int]:
        """Firing alerts per rule."""
        return {r["rule"]: r["n"] for r in await self.pool.fetch(sql("count_firing_alerts"))}

    async def queue_by_type(self) -> list[QueueReading]:
        """Per job type: ready and queued jobs and the longest wait (for the metrics endpoint)."""
        from vq_core.store.records.alerts import QueueReading

        return [QueueReading(**dict(r)) for r in await self.pool.fetch(sql("alert_queue_by_type"))]
