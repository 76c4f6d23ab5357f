"""Periodic upkeep: leases, the worker's row, other workers' leftovers, configuration.

Every worker renews the leases of its own jobs and requeues the jobs of workers
that died (SKIP LOCKED keeps concurrent recoveries safe); it heartbeats its row,
forgets workers long silent, and reloads per-type configuration.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping

from vq_core.config import Settings
from vq_core.store import Store
from vq_core.worker.routing import Router

log = logging.getLogger("vq.worker")


class Maintenance:
    """The worker's periodic database upkeep.

    ``tasks`` is the worker's running jobs, by id, and ``jobs`` all it holds (running,
    or claimed and waiting for a slot); ``abort(job_id, reason)`` stops one whose lease
    is lost or that was cancelled; ``stopping()`` says whether the
    worker is shutting down, for the status its heartbeat reports.
    """

    def __init__(
        self,
        *,
        worker_id: str,
        store: Store,
        router: Router,
        settings: Settings,
        tasks: Mapping[uuid.UUID, asyncio.Task[None]],
        jobs: Mapping[uuid.UUID, object],
        abort: Callable[[uuid.UUID, str], None],
        stopping: Callable[[], bool],
    ) -> None:
        self.worker_id = worker_id
        self.store = store
        self.router = router
        self.settings = settings
        self.tasks = tasks
        self.jobs = jobs
        self._abort = abort
        self._stopping = stopping

    async def register(self) -> None:
        """Write this worker's row: host, pid, concurrency, the types it serves."""
        await self.store.register_worker(
            self.worker_id,
            socket.gethostname(),
            os.getpid(),
            self.settings.concurrency,
            sorted(self.router.routes()),
            self.settings.lease_seconds,
        )

    async def heartbeat(self) -> None:
        """Tell the database this worker is alive (re-register if its row was pruned)."""
        status = "stopping" if self._stopping() else "running"
        if not await self.store.heartbeat(self.worker_id, len(self.tasks), status):
            await self.register()

    async def renew_leases(self) -> None:
        """Extend the leases of this worker's jobs, running or held; abort those
        cancelled or no longer ours."""
        ids = list(self.jobs)
        if not ids:
            return
        held = await self.store.renew_leases(self.worker_id, ids, self.settings.lease_seconds)
        for job_id in ids:
            if job_id not in held:
                self._abort(job_id, "lease_lost")
            elif held[job_id]:
                self._abort(job_id, "cancel")

    async def recover_leases(self) -> None:
        """Requeue jobs of workers that died; every worker does this, SKIP LOCKED keeps it safe."""
        for row in await self.store.recover_expired_leases():
            log.warning(
                "job %s: lease of worker %s expired, now %s",
                row["id"],
                row["worker_id"],
                row["status"],
            )

    async def forget_dead_workers(self) -> None:
        """Delete workers silent for ``forget_workers_after``: their stale alert then
        resolves, and the workers table lists the living (their jobs were requeued long ago)."""
        for worker_id in await self.store.prune_workers(self.settings.forget_workers_after):
            log.warning(
                "forgot worker %s: silent for over %.0fs",
                worker_id,
                self.settings.forget_workers_after,
            )

    async def refresh_config(self) -> None:
        """Reload per-type configuration (timeouts, routing, pauses, caps)."""
        self.router.queue_config = await self.store.list_queue_config()
        self.router.service_limits = await self.store.list_service_limits()
