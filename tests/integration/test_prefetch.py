"""Prefetch on a real worker and database: jobs held beyond the slots wait for one.

A worker that has measured its jobs as fast claims more than its free slots; those
jobs are running in the database and wait in the worker's queue, never more than
``concurrency`` run at once, and a cancel, a lost lease or a shutdown reaches a held job
as it reaches a running one.
"""

from __future__ import annotations

import asyncio
import uuid

from support.helpers import ScriptedService, eventually, running_worker

from vq_core.config import Settings
from vq_core.models import JobStatus, NewJob, Priority
from vq_core.store import Store
from vq_core.worker.process import Worker


async def _running(store: Store) -> int:
    counts = (await store.stats())["by_status"]
    return int(counts["running"])


async def _warm_up(store: Store, worker: Worker) -> None:
    """One instant job, so that the worker has measured its pace."""
    done = await store.enqueue(NewJob("scripted"))

    async def completed() -> bool:
        return (await store.get_job(done.id)).status is JobStatus.COMPLETED

    await eventually(completed)
    assert worker.runner.prefetch.allowance() > 0


def _two_slots(settings: Settings, **more: object) -> Settings:
    # A long prefetch_wait: the allowance is then the whole limit after one measured
    # run, however long the warm-up took on a busy machine.
    update = {"concurrency": 2, "prefetch": 50, "prefetch_wait": 60.0, **more}
    return settings.model_copy(update=update)


async def test_a_fresh_worker_claims_only_its_slots(
    store: Store, settings: Settings, dsn: str
) -> None:
    service = ScriptedService()
    async with running_worker(store, _two_slots(settings), {"scripted": service}, dsn) as worker:
        await store.enqueue_many([NewJob("scripted", {"hold": f"h{i}"}) for i in range(6)])
        await eventually(lambda: _true(len(service.running) == 2))
        # No run measured yet: a render may take minutes, so nothing is held beyond them.
        assert worker.runner.prefetch.allowance() == 0
        assert await _running(store) == 2 and len(worker.tasks) == 2
        for i in range(6):
            service.gate(f"h{i}").set()


async def _true(value: bool) -> bool:
    return value


async def test_fast_jobs_are_held_beyond_the_slots_but_run_two_at_a_time(
    store: Store, settings: Settings, dsn: str
) -> None:
    service = ScriptedService()
    async with running_worker(store, _two_slots(settings), {"scripted": service}, dsn) as worker:
        await _warm_up(store, worker)
        held = await store.enqueue_many([NewJob("scripted", {"hold": f"h{i}"}) for i in range(20)])

        async def all_held() -> bool:
            return await _running(store) == 20

        await eventually(all_held)
        assert len(worker.jobs) == 20 and len(worker.claimer.held) == 18
        assert len(worker.tasks) == len(service.running) == 2
        for i in range(20):
            service.gate(f"h{i}").set()
        for job in held:
            await eventually(lambda j=job.id: _is(store, j, JobStatus.COMPLETED))
    assert service.most_running == 2


async def _is(store: Store, job_id: uuid.UUID, status: JobStatus) -> bool:
    return (await store.get_job(job_id)).status is status


async def _hold_the_slot(store: Store, service: ScriptedService, name: str) -> uuid.UUID:
    """A job that takes the worker's one slot and holds it: enqueued, then seen started,
    before anything else is enqueued. Two claim lanes may hand their jobs over in either
    order, so a job enqueued beside it could take the slot first, whatever its priority."""
    held = await store.enqueue(NewJob("scripted", {"hold": name}, priority=Priority.HIGH))
    await asyncio.wait_for(service.started_event(name).wait(), timeout=15.0)
    return held.id


async def test_a_held_job_cancelled_is_never_rendered(
    store: Store, settings: Settings, dsn: str
) -> None:
    service = ScriptedService()
    one = _two_slots(settings, concurrency=1)
    async with running_worker(store, one, {"scripted": service}, dsn) as worker:
        await _warm_up(store, worker)
        first = await _hold_the_slot(store, service, "first")
        second = await store.enqueue(NewJob("scripted", {"hold": "second"}))
        await eventually(lambda: _is(store, second.id, JobStatus.RUNNING))
        assert second.id in {job.id for job in worker.claimer.held}
        await store.cancel(second.id)
        await eventually(lambda: _is(store, second.id, JobStatus.CANCELLED))
        service.gate("first").set()
        await eventually(lambda: _is(store, first, JobStatus.COMPLETED))
    assert [j.id for j in service.calls][1:] == [first]


async def test_a_shutdown_hands_held_jobs_back_to_the_queue(
    store: Store, settings: Settings, dsn: str
) -> None:
    service = ScriptedService()
    one = _two_slots(settings, concurrency=1, shutdown_grace=0.2)
    async with running_worker(store, one, {"scripted": service}, dsn) as worker:
        await _warm_up(store, worker)
        await _hold_the_slot(store, service, "stuck")
        waiting = await store.enqueue_many([NewJob("scripted") for _ in range(3)])
        await eventually(lambda: _true(len(worker.claimer.held) == 3))
    for job in waiting:
        assert await _is(store, job.id, JobStatus.QUEUED)
        events = [e.event for e in await store.get_events(job.id)]
        assert events[-2:] == ["claimed", "released"]
    assert len(service.calls) == 2  # the warm-up and the stuck one, not the held three


async def test_held_jobs_keep_their_lease_and_one_lost_is_dropped_unrendered(
    store: Store, settings: Settings, dsn: str
) -> None:
    service = ScriptedService()
    one = _two_slots(settings, concurrency=1)
    async with running_worker(store, one, {"scripted": service}, dsn) as worker:
        await _warm_up(store, worker)
        first = await _hold_the_slot(store, service, "first")
        kept, lost = await store.enqueue_many([NewJob("scripted"), NewJob("scripted")])
        await eventually(lambda: _true(len(worker.claimer.held) == 2))
        leases = "SELECT lease_expires_at FROM vq.jobs WHERE id = $1"
        before = await store.pool.fetchval(leases, kept.id)
        # Another worker took it over (its lease had expired there, say).
        await store.pool.execute("UPDATE vq.jobs SET worker_id = 'other' WHERE id = $1", lost.id)
        await worker.renew_leases()
        assert await store.pool.fetchval(leases, kept.id) > before
        assert [job.id for job in worker.claimer.held] == [kept.id]
        assert lost.id not in worker.jobs
        service.gate("first").set()
        await eventually(lambda: _is(store, kept.id, JobStatus.COMPLETED))
    assert lost.id not in {job.id for job in service.calls}
    assert await _is(store, first, JobStatus.COMPLETED)


async def test_finished_jobs_whose_completion_is_not_written_count_against_the_room(
    store: Store, settings: Settings, dsn: str
) -> None:
    # A database that cannot write completions must slow the claims, not let finished
    # jobs' results pile up in the worker.
    service = ScriptedService()
    two = _two_slots(settings, prefetch=0)
    async with running_worker(store, two, {"scripted": service}, dsn) as worker:
        blocker = await store.pool.acquire()
        try:
            transaction = blocker.transaction()
            await transaction.start()
            # complete_jobs updates the worker's row too: it waits for this lock.
            await blocker.execute("SELECT 1 FROM vq.workers WHERE id = $1 FOR UPDATE", worker.id)
            jobs = await store.enqueue_many([NewJob("scripted") for _ in range(10)])

            async def completion_waits() -> bool:
                # The two results are in the write, and the write waits for the lock.
                waiting = await store.pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
                return bool(waiting) and worker.completer.pending == 2

            await eventually(completion_waits)
            assert worker.completer.pending == 2 and not worker.jobs
            worker.wake()  # a wake-up finds no room: the two results are not written
            queued = "SELECT count(*) FROM vq.jobs WHERE status = 'queued'"
            assert await store.pool.fetchval(queued) == 8
            await transaction.rollback()
        finally:
            await store.pool.release(blocker)
        for job in jobs:
            await eventually(lambda j=job.id: _is(store, j, JobStatus.COMPLETED))
