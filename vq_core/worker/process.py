"""The worker: claims jobs, runs them on their video service, records the outcome.

One asyncio process runs up to ``concurrency`` jobs at once. ``Worker`` wires the
parts together and owns the life cycle; each part lives in a module of its own:

- ``claiming``: the claim lanes (two claims in flight, so the database and the
  worker never take turns idling) and the per-type caps;
- ``runner``: one job from service call to recorded outcome;
- ``completer``: successes written in batches, a few statements per burst;
- ``notifications``: LISTEN/NOTIFY wake-ups and cancels, polling as the fallback;
- ``maintenance``: leases, heartbeats, lease recovery, configuration reloads;
- ``health``: service health probes, which gate what is claimed;
- ``callbacks``: the completion callbacks of the outbox, whichever worker finished the job;
- ``events``: job events for observers (metrics, logs, plugins).

On SIGTERM it stops claiming, lets jobs in flight finish within the grace period,
and hands the rest back to the queue. Whatever the database does, ``run`` returns
within ``shutdown_grace`` + ``ABORT_WAIT`` + ``shutdown_db_timeout`` of the stop:
every database step of the shutdown shares the last budget, and a step still waiting
when it runs out is left behind (the jobs it concerned come back by lease expiry).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import pluggy

from vq_core import db
from vq_core.alerts.engine import AlertEngine, collect_sinks, sink_builder
from vq_core.config import Settings
from vq_core.models import ClaimedJob
from vq_core.store import Store
from vq_core.video_service import VideoService
from vq_core.worker.callbacks import CallbackDeliverer
from vq_core.worker.claiming import Claimer
from vq_core.worker.completer import BatchCompleter, Completion
from vq_core.worker.events import EventEmitter
from vq_core.worker.health import HealthChecks
from vq_core.worker.maintenance import Maintenance
from vq_core.worker.notifications import Notifications
from vq_core.worker.routing import Router
from vq_core.worker.runner import JobRunner
from vq_core.worker.scheduler import Periodic, start_scheduler, stop_scheduler

log = logging.getLogger("vq.worker")
_DB_ERRORS = db.DB_ERRORS
_SHUTDOWN_ERRORS: tuple[type[Exception], ...] = (TimeoutError, *_DB_ERRORS)
T = TypeVar("T")
#: Seconds jobs cancelled at the end of the grace period get to stop.
ABORT_WAIT = 10.0
# Work left behind by a bounded step, kept referenced until it unwinds.
_left_behind: set[asyncio.Task[Any]] = set()


def _forget(task: asyncio.Task[Any]) -> None:
    _left_behind.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: its caller reported the step as left behind


async def _within(timeout: float, step: Coroutine[Any, Any, T]) -> T:
    """``step``'s result, or ``TimeoutError`` once ``timeout`` seconds have passed.

    Unlike ``asyncio.wait_for``, it does not wait for the cancelled step to unwind: a
    statement cancelled on a stalled connection unwinds only when asyncpg gives up on
    the server, a statement timeout later.
    """
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=max(timeout, 0.0))
    if task in done:
        return task.result()
    task.cancel()
    _left_behind.add(task)
    task.add_done_callback(_forget)
    raise TimeoutError(f"no answer within {timeout:.1f}s" if timeout > 0 else "no time left")


async def _unless_stopped(step: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run ``step`` until it ends (True, or its error) or ``stop`` is set (False)."""
    task = asyncio.ensure_future(step)
    stop_wait = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_wait.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    _left_behind.add(task)
    task.add_done_callback(_forget)
    return False


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
        # The jobs in flight, by id: the claimer adds and removes them, the others read.
        self.tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self.jobs: dict[uuid.UUID, ClaimedJob] = {}
        self.stopping = False
        self._reloading: asyncio.Task[None] | None = None
        self._reload_again = False
        self.started = asyncio.Event()
        #: Event-loop time by which the shutdown's database work must be over (set when
        #: it begins); whoever closes the pool after ``run`` keeps to it too.
        self.shutdown_deadline: float | None = None
        self.events = EventEmitter(pm, self.id)
        self.completer = BatchCompleter(store, self.id)
        self.runner = JobRunner(
            worker_id=self.id,
            store=store,
            router=self.router,
            settings=settings,
            pm=pm,
            events=self.events,
            completer=self.completer,
            wake=self.wake,
            tasks=self.tasks,
        )
        self.completer.completed = self._completed
        self.claimer = Claimer(
            worker_id=self.id,
            store=store,
            router=self.router,
            settings=settings,
            execute=self.runner.execute,
            tasks=self.tasks,
            jobs=self.jobs,
            prefetch=self.runner.prefetch,
            cancel_unstarted=self.runner.cancel_unstarted,
            unrecorded=lambda: self.completer.pending,
        )
        self.callbacks = CallbackDeliverer(store, settings.callbacks, self.id)
        self.notifications = Notifications(
            dsn,
            settings.poll_interval,
            self.claimer.wake,
            self._cancel,
            db.connect_options(settings),
            reload=self._config_changed,
            callbacks=self.callbacks.wake,
        )
        self.health = HealthChecks(store, self.router, settings, self.claimer.wake)
        self.maintenance = Maintenance(
            worker_id=self.id,
            store=store,
            router=self.router,
            settings=settings,
            tasks=self.tasks,
            jobs=self.jobs,
            abort=self.abort,
            stopping=lambda: self.stopping,
        )
        self.alerts = AlertEngine(
            store, settings, collect_sinks(pm, settings), sink_builder(pm, settings)
        )

    # -- life cycle ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then shut down gracefully (see the module's bound).

        A stop during start-up abandons it; a start-up error is raised.
        """
        try:
            started = await _unless_stopped(self._start_up(), stop)
        except BaseException:
            await self.notifications.close(self.settings.shutdown_db_timeout)
            raise
        scheduler = start_scheduler(self._periodic_tasks()) if started else None
        try:
            if started:
                self.completer.start()
                self.callbacks.start()
                routes = ", ".join(self.router.routes()) or "-"
                log.info("worker %s started: types %s", self.id, routes)
                self.started.set()
                await self.claimer.run(stop)
        finally:
            self.stopping = True
            if scheduler is not None:
                stop_scheduler(scheduler)
            await self._shutdown()
            await self.runner.close_services()
            log.info("worker %s stopped", self.id)

    async def _start_up(self) -> None:
        await self.refresh_config()
        await self.maintenance.register()
        await self.notifications.listen()
        await self.check_health()

    def _periodic_tasks(self) -> list[Periodic]:
        s, upkeep = self.settings, self.maintenance
        return [
            Periodic("poll", s.poll_interval, self.notifications.poll),
            Periodic("renew-leases", s.lease_seconds / 3, upkeep.renew_leases),
            Periodic("heartbeat", s.heartbeat_interval, upkeep.heartbeat),
            Periodic("recover-leases", s.lease_recovery_interval, upkeep.recover_leases),
            Periodic("forget-workers", 60.0, upkeep.forget_dead_workers),
            Periodic("refresh-config", max(s.poll_interval, 5.0), upkeep.refresh_config),
            Periodic("health-checks", s.health_check_interval, self.health.check),
            Periodic("alerts", s.alerts.interval, self.alerts.tick),
            Periodic("callbacks", s.callbacks.interval, self.callbacks.tick),
        ]

    def _completed(self, batch: Sequence[Completion], done: set[uuid.UUID]) -> None:
        self.runner.completed(batch, done)
        self.claimer.room_freed()

    def wake(self) -> None:
        """Claim again now (a notification, a poll tick, a retry whose wait is over)."""
        self.claimer.wake()

    def _cancel(self, job_id: uuid.UUID) -> None:
        self.abort(job_id, "cancel")

    def abort(self, job_id: uuid.UUID, reason: str) -> None:
        """Stop one of this worker's jobs, running or held (see ``JobRunner.abort``)."""
        if not self.claimer.abort_held(job_id, reason):
            self.runner.abort(job_id, reason)

    def _config_changed(self) -> None:
        # A pause, re-route or cap takes effect now, not at the next refresh tick. A
        # change during a reload is read by one more: that reload may predate it.
        self._reload_again = True
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.create_task(self._reload_config())

    async def _reload_config(self) -> None:
        while self._reload_again:
            self._reload_again = False
            try:
                await self.refresh_config()
            except Exception as exc:  # the periodic refresh tries again
                log.warning("reloading the configuration failed (%s)", exc)
                return
            self.claimer.wake()

    async def _shutdown(self) -> None:
        """Let jobs finish within the grace period, hand the rest back, leave.

        The database steps (completions, releases, the worker's row, the LISTEN
        connection) share ``shutdown_db_timeout``: with the database gone, the leases
        expire and other workers requeue these jobs, and waiting longer would only keep
        this process alive.
        """
        self.stopping = True
        # Held jobs never started: they wait for the hand-back below, with those the
        # grace period does not see finish.
        self.claimer.stop_starting()
        await self._wait_for_jobs(self.settings.shutdown_grace)
        self.claimer.abandon()
        left = list(self.jobs)
        left_types = {job_id: job.job_type for job_id, job in self.jobs.items()}
        for job_id in self.tasks:
            self.runner.abort(job_id, reason="shutdown")
        if self.tasks:
            await asyncio.wait(list(self.tasks.values()), timeout=ABORT_WAIT)
        loop = asyncio.get_running_loop()
        self.shutdown_deadline = loop.time() + self.settings.shutdown_db_timeout
        released = await self._hand_back(left)
        for job_id in released:
            details = {"worker_id": self.id, "job_type": left_types.get(job_id)}
            self.events.emit(job_id, "released", details)
        if released:
            log.info("handed %d unfinished jobs back to the queue", len(released))
        await self.completer.stop(self._db_time_left())
        # After the last completions: their callbacks are in the outbox, for any worker.
        await self.callbacks.close(self._db_time_left())
        try:
            await _within(self._db_time_left(), self.store.deregister_worker(self.id))
        except _SHUTDOWN_ERRORS as exc:
            log.warning("could not deregister (%r); the row ages into 'stale'", exc)
        await self.notifications.close(self._db_time_left())

    async def _wait_for_jobs(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the jobs in flight, and for claims in flight
        and the jobs they bring."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self.tasks or self.claimer.claims_in_flight():
            log.info("waiting up to %.0fs for %d jobs", grace, len(self.tasks))
        while pending := {*self.tasks.values(), *self.claimer.claims_in_flight()}:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            # Returns when all are done, or at the deadline; a claim that came back
            # meanwhile added jobs, which the next round waits for.
            await asyncio.wait(pending, timeout=remaining)

    async def _hand_back(self, left: list[uuid.UUID]) -> list[uuid.UUID]:
        """Write buffered completions, then release ``left``; the ids released."""
        unrecorded = self.completer.pending + len(left)
        try:
            await _within(self._db_time_left(), self.flush())
            if not left:
                return []
            return await _within(self._db_time_left(), self.store.release(self.id, left))
        except _SHUTDOWN_ERRORS as exc:
            log.error(
                "could not record the end of %d jobs (%r); their leases will expire "
                "and another worker will run them",
                unrecorded,
                exc,
            )
            return []

    def _db_time_left(self) -> float:
        assert self.shutdown_deadline is not None
        return max(0.0, self.shutdown_deadline - asyncio.get_running_loop().time())

    # -- the parts' work, by the names operators and tests know ---------------------

    async def flush(self) -> None:
        """Write buffered completions now (see ``BatchCompleter.flush``)."""
        await self.completer.flush()

    async def check_health(self) -> None:
        """Ask every routed service for its health; unhealthy ones stop being claimed."""
        await self.health.check()

    async def refresh_config(self) -> None:
        """Reload per-type configuration (timeouts, routing, pauses, caps)."""
        await self.maintenance.refresh_config()

    async def renew_leases(self) -> None:
        """Extend the leases of jobs in flight; abort those cancelled or no longer ours."""
        await self.maintenance.renew_leases()

    async def heartbeat(self) -> None:
        """Tell the database this worker is alive (re-register if its row was pruned)."""
        await self.maintenance.heartbeat()

    async def recover_leases(self) -> None:
        """Requeue jobs of workers that died (see ``Maintenance.recover_leases``)."""
        await self.maintenance.recover_leases()

    async def forget_dead_workers(self) -> None:
        """Delete workers silent for ``forget_workers_after``."""
        await self.maintenance.forget_dead_workers()
