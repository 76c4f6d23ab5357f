"""The worker: claims jobs, runs them on their video service, records the outcome.

One asyncio process runs up to ``concurrency`` jobs at once. It wakes on
LISTEN/NOTIFY, with polling as the fallback, renews the leases of its jobs in
one statement, and batches completions so a burst of short jobs costs a few
statements rather than one per job. Two claims may be in flight at once, so the
database runs one while the worker starts the jobs of the other. On SIGTERM it
stops claiming, lets jobs in flight finish within the grace period, and hands the
rest back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import socket
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
import pluggy

from vq_core import db
from vq_core.alerts.engine import AlertEngine, collect_sinks
from vq_core.config import Settings
from vq_core.errors import ServiceError
from vq_core.models import ClaimedJob
from vq_core.store import Store
from vq_core.video_service import VideoService
from vq_core.worker.routing import Router
from vq_core.worker.runner import JobRunner
from vq_core.worker.scheduler import Periodic, start_scheduler, stop_scheduler

log = logging.getLogger("vq.worker")
_DB_ERRORS = db.DB_ERRORS
_SHUTDOWN_ERRORS: tuple[type[Exception], ...] = (TimeoutError, *_DB_ERRORS)
# Claims in flight at once. With one, the worker and the database take turns: the
# database idles while the worker starts a batch, and the other way round. Two keep
# both busy (load/bench_queue.py: drain +7 to 14%); more only split batches smaller.
CLAIM_LANES = 2


class _Lane:
    """One claim loop's wake-ups: each lane waits on its own events, so one lane
    clearing an event cannot swallow a wake-up meant for the other."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.completed = asyncio.Event()
        self.maybe_more = False


def make_worker_id() -> str:
    """Unique across hosts and restarts: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Worker:
    """A queue worker. ``await Worker(...).run(stop)`` until ``stop`` is set."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        pm: pluggy.PluginManager,
        services: Mapping[str, VideoService],
        dsn: str,
        worker_id: str | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.dsn = dsn
        self.id = worker_id or make_worker_id()
        self.router = Router(
            services, settings.services, settings.breaker_threshold, settings.breaker_cooldown
        )
        self.runner = JobRunner(self, pm)
        self.alerts = AlertEngine(store, settings, collect_sinks(pm, settings))
        self.tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self.jobs: dict[uuid.UUID, ClaimedJob] = {}
        self.completions: list[tuple[uuid.UUID, dict[str, Any]]] = []
        self.stopping = False
        self._lanes = [_Lane() for _ in range(CLAIM_LANES)]
        # Claims in flight: the types asked for and how many, counted against the
        # concurrency and per-type caps until their jobs arrive.
        self._claiming: list[tuple[list[str], int]] = []
        self._listener: asyncpg.Connection | None = None
        self._flush_wanted = asyncio.Event()
        # Held while a batch is written, so shutdown waits for a write in progress.
        self._flush_lock = asyncio.Lock()
        self.started = asyncio.Event()

    # -- life cycle ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then shut down gracefully."""
        await self.refresh_config()
        await self._register()
        await self._listen()
        await self.check_health()
        scheduler = start_scheduler(self._periodic_tasks())
        flusher = asyncio.create_task(self._flush_loop(), name="vq-flusher")
        log.info("worker %s started: types %s", self.id, ", ".join(self.router.routes()) or "-")
        self.started.set()
        try:
            await self._claim_loop(stop)
        finally:
            stop_scheduler(scheduler)
            await self._shutdown()
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await self._unlisten()
            try:
                await self.store.deregister_worker(self.id)
            except _DB_ERRORS as exc:
                log.warning("could not deregister (%s); the row ages into 'stale'", exc)
            await self.runner.close_services()
            log.info("worker %s stopped", self.id)

    def _periodic_tasks(self) -> list[Periodic]:
        s = self.settings
        return [
            Periodic("poll", s.poll_interval, self._poll),
            Periodic("renew-leases", s.lease_seconds / 3, self.renew_leases),
            Periodic("heartbeat", s.heartbeat_interval, self.heartbeat),
            Periodic("recover-leases", s.lease_recovery_interval, self.recover_leases),
            Periodic("forget-workers", 60.0, self.forget_dead_workers),
            Periodic("refresh-config", max(s.poll_interval, 5.0), self.refresh_config),
            Periodic("health-checks", s.health_check_interval, self.check_health),
            Periodic("alerts", s.alerts.interval, self.alerts.tick),
        ]

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        lanes = [asyncio.create_task(self._claim_lane(stop, lane)) for lane in self._lanes]
        try:
            await asyncio.gather(*lanes)
        finally:
            for lane_task in lanes:
                lane_task.cancel()
        self.stopping = True

    async def _claim_lane(self, stop: asyncio.Event, lane: _Lane) -> None:
        stop_wait = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                lane.wake.clear()
                lane.completed.clear()
                claimed = await self._claim_once(lane)
                if claimed:
                    continue
                wake = asyncio.create_task(lane.wake.wait())
                waiters: set[asyncio.Future[Any]] = {stop_wait, wake}
                if lane.maybe_more:
                    waiters.add(asyncio.create_task(lane.completed.wait()))
                _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for task in pending - {stop_wait}:
                    task.cancel()
        finally:
            stop_wait.cancel()

    async def _claim_once(self, lane: _Lane) -> bool:
        """Claim what fits; True when it claimed something and should try again at once."""
        concurrency = self.settings.concurrency
        free = concurrency - len(self.tasks) - sum(n for _, n in self._claiming)
        types, limit = self._claim_plan(min(free, -(-concurrency // CLAIM_LANES)))
        if limit <= 0 or not types:
            lane.maybe_more = free <= 0 or bool(self._claiming)
            return False
        claim = (types, limit)
        self._claiming.append(claim)
        try:
            jobs = await self.store.claim(self.id, types, limit, self.settings.lease_seconds)
        except _DB_ERRORS as exc:
            log.warning("claim failed (%s); retrying at the next wake-up", exc)
            return False
        except Exception:
            # Never let one bad claim end the worker; the poll tick wakes it again.
            log.exception("claim failed unexpectedly; retrying at the next wake-up")
            return False
        finally:
            self._claiming.remove(claim)
        lane.maybe_more = len(jobs) == limit
        for job in jobs:
            self.jobs[job.id] = job
            task = asyncio.create_task(self.runner.execute(job))
            self.tasks[job.id] = task
            task.add_done_callback(functools.partial(self._job_done, job.id))
        return bool(jobs) and len(self.tasks) < concurrency

    def _claim_plan(self, free: int) -> tuple[list[str], int]:
        """Types to claim and how many, honouring per-type caps of this process
        (a claim in flight counts as if all it asked for were of each of its types)."""
        limit = free
        types = []
        for job_type in self.router.claimable_types():
            cap = self.router.concurrency_for(job_type)
            if cap is None:
                types.append(job_type)
                continue
            running = sum(1 for j in self.jobs.values() if j.job_type == job_type)
            running += sum(n for claim_types, n in self._claiming if job_type in claim_types)
            if running < cap:
                types.append(job_type)
                limit = min(limit, cap - running)
        return types, limit

    def _job_done(self, job_id: uuid.UUID, _task: asyncio.Task[None]) -> None:
        self.tasks.pop(job_id, None)
        self.jobs.pop(job_id, None)
        for lane in self._lanes:
            lane.completed.set()

    def wake(self) -> None:
        """Claim again now (a notification, a poll tick, a retry whose wait is over)."""
        for lane in self._lanes:
            lane.wake.set()

    async def _poll(self) -> None:
        if self._listener is None or self._listener.is_closed():
            await self._listen()
        self.wake()

    # -- notifications --------------------------------------------------------------

    async def _listen(self) -> None:
        try:
            conn = await db.connect(self.dsn)
            await conn.add_listener("vq_jobs", self._on_jobs)
            await conn.add_listener("vq_cancel", self._on_cancel)
        except _DB_ERRORS as exc:
            log.warning(
                "LISTEN unavailable (%s); polling every %.1fs", exc, self.settings.poll_interval
            )
            return
        self._listener = conn

    async def _unlisten(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.close()
        self._listener = None

    def _on_jobs(self, *_: object) -> None:
        self.wake()

    def _on_cancel(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        with contextlib.suppress(ValueError):
            self.runner.abort(uuid.UUID(str(payload)), reason="cancel")

    # -- periodic work -------------------------------------------------------------

    async def renew_leases(self) -> None:
        """Extend the leases of jobs in flight; abort those cancelled or no longer ours."""
        ids = list(self.tasks)
        if not ids:
            return
        held = await self.store.renew_leases(self.id, ids, self.settings.lease_seconds)
        for job_id in ids:
            if job_id not in held:
                self.runner.abort(job_id, reason="lease_lost")
            elif held[job_id]:
                self.runner.abort(job_id, reason="cancel")

    async def heartbeat(self) -> None:
        """Tell the database this worker is alive (re-register if its row was pruned)."""
        status = "stopping" if self.stopping else "running"
        if not await self.store.heartbeat(self.id, len(self.tasks), status):
            await self._register()

    async def _register(self) -> None:
        await self.store.register_worker(
            self.id,
            socket.gethostname(),
            os.getpid(),
            self.settings.concurrency,
            sorted(self.router.routes()),
            self.settings.lease_seconds,
        )

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

    async def check_health(self) -> None:
        """Ask every routed service for its health; unhealthy ones stop being claimed."""
        routes = self.router.routes()
        for name, service in self.router.services.items():
            types = sorted(t for t, s in routes.items() if s == name)
            healthy, detail = await self._probe(service)
            was_healthy = name not in self.router.unhealthy
            self.router.set_health(name, healthy, detail)
            if healthy != was_healthy:
                log.warning(
                    "service %s is now %s%s",
                    name,
                    "healthy" if healthy else "unhealthy",
                    f": {detail}" if detail else "",
                )
                if healthy:
                    self.wake()
            await self.store.record_service_health(name, healthy, detail, types)

    async def _probe(self, service: VideoService) -> tuple[bool, str | None]:
        try:
            healthy = await asyncio.wait_for(service.health(), self.settings.health_check_timeout)
        except TimeoutError:
            return False, "health check timed out"
        except ServiceError as exc:
            return False, exc.message
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return bool(healthy), None if healthy else "health check answered unhealthy"

    # -- completions ---------------------------------------------------------------

    def complete_later(self, job_id: uuid.UUID, result: dict[str, Any]) -> None:
        """Queue a completion for the next batch write."""
        self.completions.append((job_id, result))
        self._flush_wanted.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._flush_wanted.wait()
            self._flush_wanted.clear()
            try:
                await self.flush()
            except Exception:
                # Completions stay buffered; the next completion or poll retries them.
                log.exception("writing completions failed; they stay buffered")
                await asyncio.sleep(1.0)  # back off before the next attempt
                self._flush_wanted.set()

    async def flush(self) -> None:
        """Write buffered completions in one statement; on a database error keep them and retry."""
        async with self._flush_lock:
            await self._write_completions()

    async def _write_completions(self) -> None:
        backoff = 0.05
        while self.completions:
            batch, self.completions = self.completions, []
            try:
                done = set(await self.store.complete_many(self.id, batch))
            except _DB_ERRORS as exc:
                self.completions[:0] = batch
                log.warning("completing %d jobs failed (%s); retrying", len(batch), exc)
                await asyncio.sleep(backoff)  # back off from a database that is failing
                backoff = min(backoff * 2, 5.0)
                continue
            self.runner.completed(batch, done)

    async def _shutdown(self) -> None:
        """Let jobs finish within the grace period, then hand the rest back."""
        self.stopping = True
        if self.tasks:
            log.info(
                "waiting up to %.0fs for %d jobs", self.settings.shutdown_grace, len(self.tasks)
            )
            await asyncio.wait(list(self.tasks.values()), timeout=self.settings.shutdown_grace)
        left = list(self.tasks)
        left_types = {job_id: self.jobs[job_id].job_type for job_id in left if job_id in self.jobs}
        for job_id in left:
            self.runner.abort(job_id, reason="shutdown")
        if self.tasks:
            await asyncio.wait(list(self.tasks.values()), timeout=10)
        try:
            # Bounded: with the database gone, the leases expire and other workers
            # requeue these jobs; waiting forever would only keep this process alive.
            await asyncio.wait_for(self.flush(), timeout=self.settings.lease_seconds)
            released = await self.store.release(self.id, left) if left else []
        except _SHUTDOWN_ERRORS as exc:
            log.error(
                "could not record the end of %d jobs (%r); their leases will expire "
                "and another worker will run them",
                len(self.completions) + len(left),
                exc,
            )
            return
        for job_id in released:
            details = {"worker_id": self.id, "job_type": left_types.get(job_id)}
            self.runner.emit(job_id, "released", details)
        if released:
            log.info("handed %d unfinished jobs back to the queue", len(released))
