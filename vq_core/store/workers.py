"""Workers: register, heartbeat, goodbye, list and prune (SQL in ``sql/queries/workers.sql``)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from vq_core.db.queries import sql
from vq_core.models import WorkerInfo


class WorkerStore:
    """The methods on ``vq.workers``; part of ``Store``."""

    pool: asyncpg.Pool

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
