"""Claiming: the claim lanes, and how many jobs of which types to ask for.

Two claims may be in flight at once, so the database runs one while the worker
starts the jobs of the other. What a claim in flight asked for counts against the
concurrency and the per-type caps until its jobs arrive, so two lanes never claim
more than fits.

A stop does not wait for a claim in flight: ``run`` returns at once, the shutdown gives
the claim the grace period to come back (its jobs then run or are handed back), and
``abandon`` cancels it after that. Jobs an abandoned claim took are this worker's in
the database only until their lease expires; lease recovery then requeues them.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from vq_core import db, tracing
from vq_core.config import Settings
from vq_core.models import ClaimedJob
from vq_core.store import Store
from vq_core.worker.prefetch import Prefetch
from vq_core.worker.routing import Router

log = logging.getLogger("vq.worker")
_DB_ERRORS = db.DB_ERRORS
# Claims in flight at once. With one, the worker and the database take turns: the
# database idles while the worker starts a batch, and the other way round. Two keep
# both busy (load/bench_queue.py: drain +7 to 14%); more only split batches smaller.
CLAIM_LANES = 2

#: Runs one claimed job to its outcome; never raises (``JobRunner.execute``).
Execute = Callable[[ClaimedJob], Coroutine[Any, Any, None]]
#: Records the cancel of a held job that never started (``JobRunner.cancel_unstarted``).
CancelUnstarted = Callable[[ClaimedJob], Coroutine[Any, Any, None]]


def _by_priority(job: ClaimedJob) -> tuple[int, datetime]:
    return job.priority, job.created_at


def _by_creation(job: ClaimedJob) -> datetime:
    return job.created_at


class _Lane:
    """One claim loop's wake-ups: each lane waits on its own events, so one lane
    clearing an event cannot swallow a wake-up meant for the other."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.completed = asyncio.Event()
        self.maybe_more = False


class Claimer:
    """Claims jobs while there is room and starts each on ``execute``.

    ``jobs`` are the worker's jobs, by id: running ones, with their task in ``tasks``,
    and, with ``prefetch``, those it holds beyond the free slots (``held``, see
    ``vq_core.worker.prefetch``), which start in claim order as slots free up. The
    claimer adds each job it claims and removes it when its task ends.
    """

    def __init__(
        self,
        *,
        worker_id: str,
        store: Store,
        router: Router,
        settings: Settings,
        execute: Execute,
        tasks: dict[uuid.UUID, asyncio.Task[None]],
        jobs: dict[uuid.UUID, ClaimedJob],
        prefetch: Prefetch | None = None,
        cancel_unstarted: CancelUnstarted | None = None,
        unrecorded: Callable[[], int] = lambda: 0,
    ) -> None:
        self.worker_id = worker_id
        # Finished jobs whose completion is not written yet: they still count against
        # the room, so a slow database slows the claims instead of piling up results.
        self._unrecorded = unrecorded
        self.prefetch = prefetch
        self._cancel_unstarted = cancel_unstarted
        #: Claimed jobs waiting for a slot, oldest claim first (a plain queue: a held job
        #: costs its ``ClaimedJob``, not a task).
        self.held: collections.deque[ClaimedJob] = collections.deque()
        self._starting = True
        self.store = store
        self.router = router
        self.settings = settings
        self.tasks = tasks
        self.jobs = jobs
        self._execute = execute
        self._lanes = [_Lane() for _ in range(CLAIM_LANES)]
        self._lane_tasks: list[asyncio.Task[None]] = []
        # Claims in flight: the types asked for and how many, counted against the
        # concurrency and per-type caps until their jobs arrive.
        self._claiming: list[tuple[list[str], int]] = []
        # Claims begun: every settings.claim_oldest_every-th takes the oldest ready
        # jobs whatever their priority, so low priorities move under a steady stream.
        self._claims = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Claim in every lane until ``stop`` is set; return then, even with a claim in
        flight (see ``claims_in_flight`` and ``abandon``)."""
        self._lane_tasks = [
            asyncio.create_task(self._claim_lane(stop, lane), name=f"vq-claim-lane-{i}")
            for i, lane in enumerate(self._lanes)
        ]
        stop_wait = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait(
                {stop_wait, *self._lane_tasks}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done - {stop_wait}:
                task.result()  # a lane ended before the stop: raise its error
        except BaseException:
            self.abandon()
            raise
        finally:
            stop_wait.cancel()

    def claims_in_flight(self) -> list[asyncio.Task[None]]:
        """The lanes still busy with a claim after the stop (each ends when it returns)."""
        return [task for task in self._lane_tasks if not task.done()]

    def abandon(self) -> None:
        """Cancel the claims still in flight, without waiting for them to unwind."""
        in_flight = self.claims_in_flight()
        if in_flight:
            log.warning(
                "abandoning %d claims in flight; jobs they took return to the queue when "
                "their lease expires (%.0fs)",
                len(in_flight),
                self.settings.lease_seconds,
            )
        for task in in_flight:
            task.cancel()

    def wake(self) -> None:
        """Claim again now (a notification, a poll tick, a retry whose wait is over)."""
        for lane in self._lanes:
            lane.wake.set()

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

    def _room(self) -> int:
        """Jobs this worker may hold: its slots, and the prefetch allowance unless a
        cluster-wide cap is in play (a held job counts as running against the cap, and
        another worker may have a free slot for it)."""
        concurrency = self.settings.concurrency
        if self.prefetch is None or any(
            self.router.is_capped(t) for t in self.router.claimable_types()
        ):
            return concurrency
        return concurrency + self.prefetch.allowance()

    async def _claim_once(self, lane: _Lane) -> bool:
        """Claim what fits; True when it claimed something and should try again at once."""
        room = self._room()
        free = room - len(self.jobs) - self._unrecorded() - sum(n for _, n in self._claiming)
        types, limit = self._claim_plan(min(free, -(-room // CLAIM_LANES)))
        if limit <= 0 or not types:
            lane.maybe_more = free <= 0 or bool(self._claiming)
            return False
        claim = (types, limit)
        self._claiming.append(claim)
        routes = self.router.routes()
        self._claims += 1
        every = self.settings.claim_oldest_every
        oldest_first = every > 0 and self._claims % every == 0
        started_ns = time.time_ns()  # the claim spans' start, when traces are on
        try:
            jobs = await self.store.claim(
                self.worker_id,
                {t: routes[t] for t in types},
                limit,
                self.settings.lease_seconds,
                limited=[t for t in types if self.router.is_capped(t)],
                oldest_first=oldest_first,
            )
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
        if jobs and tracing.enabled():
            tracing.record_claims(jobs, started_ns, time.time_ns(), self.worker_id)
        concurrency = self.settings.concurrency
        if len(jobs) > concurrency - len(self.tasks):
            # Some will wait: start them in the claim's order. The rows come back in the
            # order the database updated them, so sort by what the claim ordered by
            # (creation standing in for run_at and the groups' turns).
            jobs.sort(key=_by_creation if oldest_first else _by_priority)
        for job in jobs:
            self.jobs[job.id] = job
            if self._starting and len(self.tasks) < concurrency:
                self._start(job, self._execute)
            else:
                self.held.append(job)
        return bool(jobs) and len(self.jobs) + self._unrecorded() < room

    def _start(self, job: ClaimedJob, run: Execute) -> None:
        task = asyncio.create_task(run(job))
        self.tasks[job.id] = task
        task.add_done_callback(functools.partial(self._job_done, job.id))

    def stop_starting(self) -> None:
        """Start no held job from now on (the shutdown hands them back)."""
        self._starting = False

    def abort_held(self, job_id: uuid.UUID, reason: str) -> bool:
        """Stop a held job before it starts; False if ``job_id`` is not held here.

        A cancel is recorded as for a running job; a lost lease drops the job (another
        worker has it); any other reason leaves it for the shutdown to hand back.
        """
        job = self.jobs.get(job_id)
        if job is None or job_id in self.tasks:
            return False
        if reason == "cancel" and self._cancel_unstarted is not None:
            self.held.remove(job)
            self._start(job, self._cancel_unstarted)
        elif reason == "lease_lost":
            self.held.remove(job)
            del self.jobs[job_id]
            log.warning("job %s: lease lost to another worker before it started", job_id)
        return True

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
        held, concurrency = self.held, self.settings.concurrency
        while held and self._starting and len(self.tasks) < concurrency:
            self._start(held.popleft(), self._execute)
        self.room_freed()

    def room_freed(self) -> None:
        """A job ended or its completion was written: a lane waiting for room claims."""
        for lane in self._lanes:
            lane.completed.set()
