"""Jobs through their life: submit, claim, renew, complete, fail, cancel, retry, release,
recover, read and prune (SQL in ``sql/queries/jobs.sql``).

Every state change writes its ``job_events`` row in the same statement, so the history
is the same whoever asked for the change: the worker, the CLI, the API or the admin page.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from vq_core.db.queries import sql
from vq_core.errors import InvalidTransition, JobNotFound
from vq_core.models import (
    Actor,
    ClaimedJob,
    ErrorCategory,
    Job,
    JobEvent,
    JobStatus,
    NewJob,
    Priority,
)

# A student's invalid payload or an operator's cancel says nothing about the worker: these
# failures do not make it "failing" nor fire the worker_failures alert.
_NOT_WORKER_FAULTS = frozenset({ErrorCategory.INVALID_INPUT.value, ErrorCategory.CANCELLED.value})


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The id of a submitted job and whether it is new (False: idempotency key matched)."""

    id: uuid.UUID
    created: bool


def job_from_row(row: asyncpg.Record) -> Job:
    """A ``Job`` from a ``SELECT * FROM vq.jobs`` row."""
    data = dict(row)
    data["priority"] = Priority(data["priority"])
    data["status"] = JobStatus(data["status"])
    return Job(**data)


_PRIORITIES = {int(p): p for p in Priority}

# Claim orders, whitelisted for claim_jobs' {order}. "priority" takes turns between
# groups within a priority (fair_seq, set on insert); "oldest" is the share that keeps
# low priorities moving (docs/operations.md, "Fairness").
_CLAIM_ORDER = {"priority": "priority, fair_seq, run_at", "oldest": "run_at"}
# A capped claim looks at this many candidates per job it may take (at least
# _MIN_CANDIDATES), so groups and types at their cap do not starve the rest.
_CANDIDATES_PER_SLOT = 4
_MIN_CANDIDATES = 100


def _claimed(row: asyncpg.Record) -> ClaimedJob:
    # On the hot path: positional fields in claim_jobs' RETURNING order, no dict.
    job_id, job_type, priority, payload, retry_count, max_retries, created_at, trace = row
    return ClaimedJob(
        job_id,
        job_type,
        _PRIORITIES[priority],
        payload,
        retry_count,
        max_retries,
        created_at,
        trace,
    )


def _unless_all_none(column: list[Any]) -> list[Any]:
    """A batch column as enqueue_jobs takes it: [] when no job sets it (read as NULLs)."""
    return [] if column.count(None) == len(column) else column


class JobStore:
    """The methods on ``vq.jobs`` and ``vq.job_events``; part of ``Store``."""

    pool: asyncpg.Pool
    default_max_retries: int

    # -- submitting -------------------------------------------------------------

    async def enqueue(self, job: NewJob) -> Enqueued:
        """Add one job; with a known idempotency key, return the existing job instead."""
        return (await self.enqueue_many([job]))[0]

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        """Add a batch in one round trip; answers come in input order."""
        if not jobs:
            return []
        if all(job.idempotency_key is None for job in jobs):
            # The common batch: no key to dedupe, so no bookkeeping per job.
            return await self._enqueue_unkeyed(jobs)
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
        rows = await self.pool.fetch(
            sql("enqueue_jobs_keyed"),
            [j.job_type for j in batch],
            [int(j.priority) for j in batch],
            [j.payload for j in batch],
            [j.run_at for j in batch],
            [j.max_retries for j in batch],
            [j.idempotency_key for j in batch],
            self.default_max_retries,
            [j.group_key for j in batch],
            [j.callback_url for j in batch],
            # NULL, not a list of NULLs, when traces are off: nothing to encode.
            [j.trace_context for j in batch] if any(j.trace_context for j in batch) else None,
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
        # One JSON document of columns (enqueue_jobs): json.dumps of a few lists is a
        # third of the time of one dict per job, and a column no job sets is sent as [].
        run_at = [j.run_at.isoformat() if j.run_at else None for j in jobs]
        batch = [
            [j.job_type for j in jobs],
            [int(j.priority) for j in jobs],
            [j.payload for j in jobs],
            _unless_all_none(run_at),
            _unless_all_none([j.max_retries for j in jobs]),
            _unless_all_none([j.group_key for j in jobs]),
            _unless_all_none([j.callback_url for j in jobs]),
            _unless_all_none([j.trace_context or None for j in jobs]),
        ]
        rows = await self.pool.fetch(sql("enqueue_jobs"), batch, self.default_max_retries)
        return [Enqueued(row[0], True) for row in rows]

    # -- the worker's side ------------------------------------------------------

    async def claim(
        self,
        worker_id: str,
        routes: Mapping[str, str],
        limit: int,
        lease_seconds: float,
        *,
        limited: Collection[str] = (),
        oldest_first: bool = False,
    ) -> list[ClaimedJob]:
        """Claim up to ``limit`` eligible jobs of the types in ``routes`` (job type ->
        the service it is routed to), highest priority first, taking turns between
        groups (``oldest_first``: the longest waiting first, whatever their priority).

        Types in ``limited`` (a cluster-wide cap on the type, its groups or its service)
        are claimed first, under the claim lock, as far as their caps leave room. The
        database has the last word: a type it knows as paused or capped is never taken
        by the unlimited claim, whatever the caller last read.
        """
        if limit <= 0 or not routes:
            return []
        order = _CLAIM_ORDER["oldest" if oldest_first else "priority"]
        out: list[ClaimedJob] = []
        capped = {t: s for t, s in routes.items() if t in limited}
        if capped:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(sql("claim_lock"))
                rows = await conn.fetch(
                    sql("claim_limited_jobs").format(order=order),
                    worker_id,
                    list(capped),
                    list(capped.values()),
                    limit,
                    lease_seconds,
                    max(limit * _CANDIDATES_PER_SLOT, _MIN_CANDIDATES),
                )
            out = [_claimed(r) for r in rows]
            limit -= len(out)
        free = {t: s for t, s in routes.items() if t not in limited}
        if free and limit > 0:
            rows = await self.pool.fetch(
                sql("claim_jobs").format(order=order),
                worker_id,
                list(free),
                list(free.values()),
                limit,
                lease_seconds,
            )
            out.extend(_claimed(r) for r in rows)
        return out

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
        """Mark jobs completed with their results; returns the ids now completed by this
        worker, including those it had completed already (a retry after a lost reply).
        The others are lost: another worker holds or finished them, or they are gone."""
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
        when it is ``None``. Returns the new status, or ``None`` if the job was not ours.

        A failure of category ``INVALID_INPUT`` or ``CANCELLED`` (``error["type"]``) is the
        job's, not the worker's: it counts in ``jobs_failed`` but not in the worker's
        ``consecutive_failures`` (nor resets it).
        """
        worker_fault = error.get("type") not in _NOT_WORKER_FAULTS
        row = await self.pool.fetchrow(
            sql("fail_job"), worker_id, job_id, error, retry_in, worker_fault
        )
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

    # Idle workers learn of jobs made ready here (release, recovery, retry) from the
    # jobs table's own trigger (migration 0007), as they do of inserts: one mechanism.

    async def release(self, worker_id: str, job_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        """Hand unfinished jobs back to the queue (graceful shutdown)."""
        if not job_ids:
            return []
        rows = await self.pool.fetch(sql("release_jobs"), worker_id, list(job_ids))
        return [r["job_id"] for r in rows]

    async def recover_expired_leases(self) -> list[dict[str, Any]]:
        """Requeue running jobs whose lease ran out (their worker died or hung)."""
        rows = await self.pool.fetch(sql("recover_expired_leases"))
        return [dict(r) for r in rows]

    # -- operators' actions -----------------------------------------------------

    async def cancel(self, job_id: uuid.UUID, actor: Actor | None = None) -> Job:
        """Cancel a queued job at once, or ask the worker of a running job to stop it;
        the history records ``actor``."""
        details = actor.to_dict() if actor else {}
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(sql("cancel_job"), job_id, details)
            if row is None:
                await self._explain_refusal(conn, job_id, "cancel", "queued or running")
            if row is not None and row["status"] == "running":
                await conn.execute(sql("notify_cancel"), str(job_id))
        return await self.get_job(job_id)

    async def retry(self, job_id: uuid.UUID, actor: Actor | None = None) -> Job:
        """Send a failed or cancelled job back to the queue with a fresh set of retries;
        the history records ``actor``."""
        details = actor.to_dict() if actor else {}
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(sql("retry_job"), job_id, details)
            if row is None:
                await self._explain_refusal(conn, job_id, "retry", "failed or cancelled")
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

    # -- reading and pruning ----------------------------------------------------

    async def get_job(self, job_id: uuid.UUID) -> Job:
        """One job; ``JobNotFound`` if there is none."""
        row = await self.pool.fetchrow(sql("get_job"), job_id)
        if row is None:
            raise JobNotFound(f"no job {job_id}")
        return job_from_row(row)

    async def get_events(self, job_id: uuid.UUID) -> list[JobEvent]:
        """A job's history, oldest first."""
        rows = await self.pool.fetch(sql("get_job_events"), job_id)
        return [JobEvent(**dict(r)) for r in rows]

    async def prune(self, older_than_s: float, batch: int = 10_000) -> int:
        """Delete finished jobs (and their history) older than ``older_than_s``."""
        total = 0
        while True:
            deleted: int = await self.pool.fetchval(sql("prune_jobs"), older_than_s, batch)
            total += deleted
            if deleted < batch:
                return total
