"""The store: one method per query, returning models. The only door to the database.

The worker, the CLI, the API and the admin page all call these methods, so a
state change is written the same way (with its ``job_events`` row, in the same
statement) whoever asks for it.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from vq_core.db.queries import sql
from vq_core.errors import InvalidInput, InvalidTransition, JobNotFound
from vq_core.models import (
    ClaimedJob,
    Job,
    JobEvent,
    JobFilter,
    JobPage,
    JobStatus,
    NewJob,
    Priority,
    QueueConfig,
    WorkerInfo,
)
from vq_core.store.stats import collect_stats, throughput_series


@dataclass(frozen=True)
class Sort:
    """A sort key of the job list: the column its cursor carries and that column's SQL
    type; ``by_id``: the id alone orders (ids are time-ordered, so creation order is id
    order and the primary key serves it)."""

    column: str
    type: str
    by_id: bool = False


SORTS: dict[str, Sort] = {
    "created_at": Sort("created_at", "timestamptz", by_id=True),
    "updated_at": Sort("updated_at", "timestamptz"),
    "priority": Sort("priority", "smallint"),
}
MAX_PAGE = 500


def list_query(sort: str) -> tuple[str, Sort]:
    """``list_jobs``' SQL for a sort key (prefix ``-``: descending) and the key."""
    key = sort.lstrip("-")
    if key not in SORTS:
        raise InvalidInput(f"sort: use one of {', '.join(SORTS)} (prefix - for descending)")
    spec = SORTS[key]
    direction, cmp = ("DESC", "<") if sort.startswith("-") else ("ASC", ">")
    if spec.by_id:
        after, order = f"id {cmp} $6::uuid", f"id {direction}"
    else:
        after = f"({spec.column}, id) {cmp} ($5::text::{spec.type}, $6::uuid)"
        order = f"{spec.column} {direction}, id {direction}"
    return sql("list_jobs").format(after=after, order=order), spec


@dataclass(frozen=True)
class Enqueued:
    """The id of a submitted job and whether it is new (False: idempotency key matched)."""

    id: uuid.UUID
    created: bool


def _job(row: asyncpg.Record) -> Job:
    data = dict(row)
    data["priority"] = Priority(data["priority"])
    data["status"] = JobStatus(data["status"])
    return Job(**data)


_PRIORITIES = {int(p): p for p in Priority}


def _claimed(row: asyncpg.Record) -> ClaimedJob:
    # On the hot path: positional fields in claim_jobs' RETURNING order, no dict.
    job_id, job_type, priority, payload, retry_count, max_retries, created_at = row
    return ClaimedJob(
        job_id, job_type, _PRIORITIES[priority], payload, retry_count, max_retries, created_at
    )


def _is_timestamp(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _encode_cursor(value: Any, job_id: uuid.UUID) -> str:
    raw = json.dumps([value.isoformat() if hasattr(value, "isoformat") else value, str(job_id)])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[str, uuid.UUID]:
    try:
        value, job_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return str(value), uuid.UUID(job_id)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"cursor: not a cursor this server issued ({exc})") from None


class Store:
    """vq's data access over an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool, default_max_retries: int = 3) -> None:
        self.pool = pool
        self.default_max_retries = default_max_retries

    async def close(self) -> None:
        """Close the pool."""
        await self.pool.close()

    # -- submitting -------------------------------------------------------------

    async def enqueue(self, job: NewJob) -> Enqueued:
        """Add one job; with a known idempotency key, return the existing job instead."""
        return (await self.enqueue_many([job]))[0]

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        """Add a batch in one round trip; answers come in input order."""
        if not jobs:
            return []
        # A key repeated within the batch is sent once and answered like its first use.
        first_with_key: dict[str, int] = {}
        unique: list[int] = []
        for i, job in enumerate(jobs):
            key = job.idempotency_key
            if key is None or key not in first_with_key:
                unique.append(i)
                if key is not None:
                    first_with_key[key] = i
        batch = [jobs[i] for i in unique]
        if not first_with_key:
            return await self._enqueue_unkeyed(batch)
        rows = await self.pool.fetch(
            sql("enqueue_jobs_keyed"),
            [j.job_type for j in batch],
            [int(j.priority) for j in batch],
            [j.payload for j in batch],
            [j.run_at for j in batch],
            [j.max_retries for j in batch],
            [j.idempotency_key for j in batch],
            self.default_max_retries,
        )
        answers: dict[int, Enqueued] = {}
        raced: dict[str, int] = {}
        for i, row in zip(unique, rows, strict=True):
            if row["id"] is None:
                raced[jobs[i].idempotency_key or ""] = i
            else:
                answers[i] = Enqueued(row["id"], row["created"])
        if raced:
            # A concurrent transaction inserted the key after our snapshot: look it up now.
            for row in await self.pool.fetch(sql("ids_by_idempotency_key"), list(raced)):
                answers[raced[row["idempotency_key"]]] = Enqueued(row["id"], False)
        out = []
        for i, job in enumerate(jobs):
            if i not in answers:
                first = answers[first_with_key[job.idempotency_key or ""]]
                answers[i] = Enqueued(first.id, False)
            out.append(answers[i])
        return out

    async def _enqueue_unkeyed(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        """The common case, no idempotency keys: every job is new, nothing to look up."""
        batch = [
            {
                "job_type": j.job_type,
                "priority": int(j.priority),
                "payload": j.payload,
                "run_at": j.run_at.isoformat() if j.run_at else None,
                "max_retries": j.max_retries,
            }
            for j in jobs
        ]
        rows = await self.pool.fetch(sql("enqueue_jobs"), batch, self.default_max_retries)
        return [Enqueued(row[0], True) for row in rows]

    # -- the worker's side ------------------------------------------------------

    async def claim(
        self, worker_id: str, job_types: Sequence[str], limit: int, lease_seconds: float
    ) -> list[ClaimedJob]:
        """Claim up to ``limit`` eligible jobs of ``job_types``, highest priority then oldest."""
        if limit <= 0 or not job_types:
            return []
        rows = await self.pool.fetch(
            sql("claim_jobs"), worker_id, list(job_types), limit, lease_seconds
        )
        return [_claimed(r) for r in rows]

    async def renew_leases(
        self, worker_id: str, job_ids: Sequence[uuid.UUID], lease_seconds: float
    ) -> dict[uuid.UUID, bool]:
        """Extend leases in one statement; returns job id -> cancel requested, for the jobs
        this worker still holds (a missing id means its lease was lost)."""
        if not job_ids:
            return {}
        rows = await self.pool.fetch(sql("renew_leases"), worker_id, list(job_ids), lease_seconds)
        return {r["id"]: r["cancel_requested"] for r in rows}

    async def complete_many(
        self, worker_id: str, results: Sequence[tuple[uuid.UUID, dict[str, Any]]]
    ) -> list[uuid.UUID]:
        """Mark jobs completed with their results; returns the ids this worker still held."""
        if not results:
            return []
        lost = await self.pool.fetch(
            sql("complete_jobs"),
            worker_id,
            [job_id for job_id, _ in results],
            [result for _, result in results],
        )
        gone = {r[0] for r in lost}
        return [job_id for job_id, _ in results if job_id not in gone]

    async def fail(
        self,
        worker_id: str,
        job_id: uuid.UUID,
        error: dict[str, Any],
        retry_in: float | None,
    ) -> JobStatus | None:
        """Record a failed attempt: requeue after ``retry_in`` seconds, or fail for good
        when it is ``None``. Returns the new status, or ``None`` if the job was not ours."""
        row = await self.pool.fetchrow(sql("fail_job"), worker_id, job_id, error, retry_in)
        return JobStatus(row["status"]) if row else None

    async def update_progress(
        self, worker_id: str, job_id: uuid.UUID, percent: float, stage: str
    ) -> bool:
        """Store a running job's progress; False if the job is no longer this worker's."""
        progress = {"percent": round(max(0.0, min(100.0, percent)), 1), "stage": stage}
        row = await self.pool.fetchrow(sql("update_progress"), worker_id, job_id, progress)
        return row is not None

    async def mark_cancelled(self, worker_id: str, job_id: uuid.UUID) -> bool:
        """A worker aborted a job it was asked to cancel."""
        error = {"message": "cancelled by an operator", "type": "CANCELLED", "retryable": False}
        row = await self.pool.fetchrow(sql("mark_cancelled"), worker_id, job_id, error)
        return row is not None

    async def release(self, worker_id: str, job_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        """Hand unfinished jobs back to the queue (graceful shutdown)."""
        if not job_ids:
            return []
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(sql("release_jobs"), worker_id, list(job_ids))
            if rows:
                await conn.execute(sql("notify_jobs"))
        return [r["job_id"] for r in rows]

    async def recover_expired_leases(self) -> list[dict[str, Any]]:
        """Requeue running jobs whose lease ran out (their worker died or hung)."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(sql("recover_expired_leases"))
            if any(r["status"] == "queued" for r in rows):
                await conn.execute(sql("notify_jobs"))
        return [dict(r) for r in rows]

    # -- operators' actions -----------------------------------------------------

    async def cancel(self, job_id: uuid.UUID, by: str | None = None) -> Job:
        """Cancel a queued job at once, or ask the worker of a running job to stop it."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(sql("cancel_job"), job_id, {"by": by})
            if row is None:
                await self._explain_refusal(conn, job_id, "cancel", "queued or running")
            if row is not None and row["status"] == "running":
                await conn.execute(sql("notify_cancel"), str(job_id))
        return await self.get_job(job_id)

    async def retry(self, job_id: uuid.UUID, by: str | None = None) -> Job:
        """Send a failed or cancelled job back to the queue with a fresh set of retries."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(sql("retry_job"), job_id, {"by": by})
            if row is None:
                await self._explain_refusal(conn, job_id, "retry", "failed or cancelled")
            await conn.execute(sql("notify_jobs"))
        return await self.get_job(job_id)

    async def _explain_refusal(
        self,
        conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
        job_id: uuid.UUID,
        action: str,
        allowed: str,
    ) -> None:
        row = await conn.fetchrow(sql("get_job"), job_id)
        if row is None:
            raise JobNotFound(f"no job {job_id}")
        raise InvalidTransition(
            f"cannot {action} job {job_id}: it is {row['status']}, not {allowed}"
        )

    # -- reading ----------------------------------------------------------------

    async def get_job(self, job_id: uuid.UUID) -> Job:
        """One job; ``JobNotFound`` if there is none."""
        row = await self.pool.fetchrow(sql("get_job"), job_id)
        if row is None:
            raise JobNotFound(f"no job {job_id}")
        return _job(row)

    async def get_events(self, job_id: uuid.UUID) -> list[JobEvent]:
        """A job's history, oldest first."""
        rows = await self.pool.fetch(sql("get_job_events"), job_id)
        return [JobEvent(**dict(r)) for r in rows]

    async def list_jobs(
        self,
        filters: JobFilter | None = None,
        sort: str = "-created_at",
        cursor: str | None = None,
        limit: int = 50,
    ) -> JobPage:
        """One page of jobs; pass ``next_cursor`` back for the next page."""
        f = filters or JobFilter()
        query, spec = list_query(sort)
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit: must be between 1 and {MAX_PAGE}")
        text = f.text.strip() if f.text and f.text.strip() else None
        if text is not None and (pasted := _as_uuid(text)) is not None:
            return await self._list_one(pasted, f)
        after_value, after_id = _decode_cursor(cursor) if cursor else (None, None)
        if after_value is not None and spec.by_id and not _is_timestamp(after_value):
            # The id alone places the page; still refuse another sort's cursor.
            raise InvalidInput("cursor: not a cursor of this sort order")
        rows = await self.pool.fetch(
            query,
            f.status.value if f.status else None,
            f.job_type,
            int(f.priority) if f.priority is not None else None,
            text,
            after_value,
            after_id,
            limit + 1,
        )
        jobs = [_job(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = _encode_cursor(last[spec.column], last["id"])
        return JobPage(jobs, next_cursor)

    async def _list_one(self, job_id: uuid.UUID, f: JobFilter) -> JobPage:
        """A pasted job id: one primary-key read instead of a search of the table."""
        try:
            job = await self.get_job(job_id)
        except JobNotFound:
            return JobPage([], None)
        matches = (
            (f.status is None or job.status is f.status)
            and (f.job_type is None or job.job_type == f.job_type)
            and (f.priority is None or job.priority is f.priority)
        )
        return JobPage([job] if matches else [], None)

    # -- workers and per-type configuration -------------------------------------

    async def register_worker(
        self,
        worker_id: str,
        hostname: str,
        pid: int,
        concurrency: int,
        job_types: Sequence[str],
        lease_seconds: float,
    ) -> None:
        """Announce a worker."""
        await self.pool.execute(
            sql("register_worker"),
            worker_id,
            hostname,
            pid,
            concurrency,
            list(job_types),
            lease_seconds,
        )

    async def heartbeat(self, worker_id: str, in_flight: int, status: str = "running") -> bool:
        """Record that a worker is alive; False if its row was pruned."""
        return (
            await self.pool.fetchval(sql("heartbeat_worker"), worker_id, in_flight, status)
            is not None
        )

    async def deregister_worker(self, worker_id: str) -> None:
        """A worker leaves cleanly."""
        await self.pool.execute(sql("deregister_worker"), worker_id)

    async def list_workers(self) -> list[WorkerInfo]:
        """Known workers, each marked stale when its heartbeat is older than its lease."""
        rows = await self.pool.fetch(sql("list_workers"))
        return [WorkerInfo(**dict(r)) for r in rows]

    async def prune_workers(self, silent_for_s: float) -> list[str]:
        """Forget workers silent for longer than ``silent_for_s``."""
        rows = await self.pool.fetch(sql("prune_workers"), silent_for_s)
        return [r["id"] for r in rows]

    async def set_queue_config(self, config: QueueConfig) -> None:
        """Create or replace a job type's configuration."""
        await self.pool.execute(
            sql("upsert_queue_config"),
            config.job_type,
            config.max_retries,
            config.timeout_s,
            config.service,
            config.concurrency,
            config.paused,
        )

    async def list_queue_config(self) -> dict[str, QueueConfig]:
        """Every configured job type."""
        rows = await self.pool.fetch(sql("list_queue_config"))
        return {r["job_type"]: QueueConfig(**dict(r)) for r in rows}

    async def prune(self, older_than_s: float, batch: int = 10_000) -> int:
        """Delete finished jobs (and their history) older than ``older_than_s``."""
        total = 0
        while True:
            deleted: int = await self.pool.fetchval(sql("prune_jobs"), older_than_s, batch)
            total += deleted
            if deleted < batch:
                return total

    # -- statistics -------------------------------------------------------------

    async def stats(self) -> dict[str, Any]:
        """Counts by status/type/priority, depth, oldest age, throughput, durations."""
        return await collect_stats(self.pool)

    async def throughput_series(self) -> list[dict[str, Any]]:
        """Per-minute completions over the last hour."""
        return await throughput_series(self.pool)

    # -- service health -----------------------------------------------------------

    async def record_service_health(
        self, service: str, healthy: bool, detail: str | None, job_types: Sequence[str]
    ) -> None:
        """Store the latest health check of a video service."""
        await self.pool.execute(
            sql("record_service_health"), service, healthy, detail, list(job_types)
        )

    async def list_service_health(self) -> list[dict[str, Any]]:
        """The latest health check of every service."""
        return [dict(r) for r in await self.pool.fetch(sql("list_service_health"))]
