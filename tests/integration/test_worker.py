"""A real worker on a real database: execution, retries, timeouts, cancel, shutdown."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from support.helpers import ScriptedService, eventually, running_worker

from vq_core import hookimpl
from vq_core.config import Settings
from vq_core.errors import ServiceError
from vq_core.models import ErrorCategory, JobStatus, NewJob, Priority, QueueConfig
from vq_core.plugins import make_plugin_manager
from vq_core.store import Store


async def status_of(store: Store, job_id: uuid.UUID) -> JobStatus:
    return (await store.get_job(job_id)).status


async def wait_status(store: Store, job_id: uuid.UUID, status: JobStatus) -> None:
    async def check() -> bool:
        return await status_of(store, job_id) is status

    await eventually(check)


async def test_jobs_run_once_and_complete(store: Store, settings: Settings, dsn: str) -> None:
    service = ScriptedService()
    async with running_worker(store, settings, {"scripted": service}, dsn):
        results = await store.enqueue_many(
            [NewJob("scripted", {"result": {"n": i}}) for i in range(30)]
        )
        for r in results:
            await wait_status(store, r.id, JobStatus.COMPLETED)
    assert sorted(j.payload["result"]["n"] for j in service.calls) == list(range(30))
    job = await store.get_job(results[7].id)
    assert job.result == {"n": 7}


async def test_concurrency_and_per_type_caps_hold_with_claims_in_flight(
    store: Store, settings: Settings, dsn: str
) -> None:
    # Two claim lanes run at once; between them they must never take more than the
    # process's concurrency, nor more of a capped type than its cap.
    await store.set_queue_config(QueueConfig("capped", concurrency=2))
    service = ScriptedService(job_types=("scripted", "capped"))
    four = settings.model_copy(update={"concurrency": 4})
    # Capped jobs first in line, so every claim would take them if it could.
    jobs = [
        NewJob(t, {"hold": f"{t}{i}"}, priority=p)
        for i in range(6)
        for t, p in (("scripted", Priority.NORMAL), ("capped", Priority.HIGH))
    ]
    async with running_worker(store, four, {"scripted": service}, dsn) as worker:
        await worker.refresh_config()
        results = await store.enqueue_many(jobs)
        await eventually(lambda: _started_count(service, 4))
        assert service.most_running_of["capped"] == 2
        for job in jobs:  # release one at a time: each frees a slot for the next claim
            service.gate(job.payload["hold"]).set()
        for r in results:
            await wait_status(store, r.id, JobStatus.COMPLETED)
    assert service.most_running == 4
    assert service.most_running_of["capped"] == 2


async def _started_count(service: ScriptedService, n: int) -> bool:
    return len(service.running) == n


async def test_notify_wakes_an_idle_worker_before_the_poll(
    store: Store, settings: Settings, dsn: str
) -> None:
    slow_poll = settings.model_copy(update={"poll_interval": 3600.0})
    async with running_worker(store, slow_poll, {"scripted": ScriptedService()}, dsn):
        res = await store.enqueue(NewJob("scripted"))
        await eventually(lambda: _is(store, res.id, JobStatus.COMPLETED), timeout=5)


async def _is(store: Store, job_id: uuid.UUID, status: JobStatus) -> bool:
    return await status_of(store, job_id) is status


async def test_retryable_failure_backs_off_then_fails_for_good(
    store: Store, settings: Settings, dsn: str
) -> None:
    service = ScriptedService()
    service.raise_for = lambda job: ServiceError(
        ErrorCategory.API_ERROR,
        "render server said 503",
        service="scripted",
        call="POST /render",
        status_code=503,
        body_excerpt="busy",
    )
    async with running_worker(store, settings, {"scripted": service}, dsn):
        res = await store.enqueue(NewJob("scripted", max_retries=2))
        await wait_status(store, res.id, JobStatus.FAILED)
    job = await store.get_job(res.id)
    assert len(service.calls) == 3
    assert job.retry_count == 2
    error = job.error or {}
    assert error["type"] == "API_ERROR" and error["retryable"] is True
    assert error["attempt"] == 3 and error["status_code"] == 503
    assert error["service"] == "scripted" and error["call"] == "POST /render"
    assert "Traceback" in error["stack"] and error["timestamp"]
    events = [e.event for e in await store.get_events(res.id)]
    assert events.count("retry_scheduled") == 2 and events[-1] == "failed"


async def test_invalid_input_is_not_retried(store: Store, settings: Settings, dsn: str) -> None:
    service = ScriptedService()
    service.raise_for = lambda job: ServiceError(ErrorCategory.INVALID_INPUT, "no question")
    async with running_worker(store, settings, {"scripted": service}, dsn):
        res = await store.enqueue(NewJob("scripted", max_retries=5))
        await wait_status(store, res.id, JobStatus.FAILED)
    assert len(service.calls) == 1
    assert (await store.get_job(res.id)).error["type"] == "INVALID_INPUT"


async def test_unexpected_exception_is_unknown_and_worker_survives(
    store: Store, settings: Settings, dsn: str
) -> None:
    service = ScriptedService()
    service.raise_for = lambda job: (
        ZeroDivisionError("oops") if job.payload.get("explode") else None
    )
    async with running_worker(store, settings, {"scripted": service}, dsn):
        bad = await store.enqueue(NewJob("scripted", {"explode": True}, max_retries=0))
        await wait_status(store, bad.id, JobStatus.FAILED)
        good = await store.enqueue(NewJob("scripted"))
        await wait_status(store, good.id, JobStatus.COMPLETED)
    assert (await store.get_job(bad.id)).error["type"] == "UNKNOWN"


async def test_per_type_timeout_from_queue_config(
    store: Store, settings: Settings, dsn: str
) -> None:
    await store.set_queue_config(QueueConfig("scripted", max_retries=0, timeout_s=0.2))
    service = ScriptedService()
    async with running_worker(store, settings, {"scripted": service}, dsn):
        res = await store.enqueue(NewJob("scripted", {"hold": "never"}))
        await wait_status(store, res.id, JobStatus.FAILED)
    assert (await store.get_job(res.id)).error["type"] == "TIMEOUT"


async def test_cancel_of_a_running_job_aborts_it(
    store: Store, settings: Settings, dsn: str
) -> None:
    service = ScriptedService()
    async with running_worker(store, settings, {"scripted": service}, dsn):
        res = await store.enqueue(NewJob("scripted", {"hold": "h"}))
        await asyncio.wait_for(service.started_event("h").wait(), 10)
        await store.cancel(res.id)
        await wait_status(store, res.id, JobStatus.CANCELLED)
    events = [e.event for e in await store.get_events(res.id)]
    assert events[-2:] == ["cancel_requested", "cancelled"]


async def test_progress_is_stored(store: Store, settings: Settings, dsn: str) -> None:
    service = ScriptedService()
    async with running_worker(store, settings, {"scripted": service}, dsn):
        res = await store.enqueue(NewJob("scripted", {"hold": "p"}))
        await asyncio.wait_for(service.started_event("p").wait(), 10)

        async def has_progress() -> bool:
            return (await store.get_job(res.id)).progress == {"percent": 50.0, "stage": "holding"}

        await eventually(has_progress)
        service.gate("p").set()
        await wait_status(store, res.id, JobStatus.COMPLETED)


async def test_shutdown_hands_unfinished_jobs_back(
    store: Store, settings: Settings, dsn: str
) -> None:
    quick = settings.model_copy(update={"shutdown_grace": 0.2})
    service = ScriptedService()
    async with running_worker(store, quick, {"scripted": service}, dsn) as worker:
        res = await store.enqueue(NewJob("scripted", {"hold": "forever"}))
        await asyncio.wait_for(service.started_event("forever").wait(), 10)
        worker_id = worker.id
    job = await store.get_job(res.id)
    assert job.status is JobStatus.QUEUED and job.worker_id is None
    events = await store.get_events(res.id)
    assert events[-1].event == "released" and events[-1].worker_id == worker_id
    assert await store.list_workers() == []


async def test_shutdown_lets_jobs_finish_within_grace(
    store: Store, settings: Settings, dsn: str
) -> None:
    service = ScriptedService()
    async with running_worker(store, settings, {"scripted": service}, dsn):
        res = await store.enqueue(NewJob("scripted", {"hold": "g"}))
        await asyncio.wait_for(service.started_event("g").wait(), 10)
        # Open the gate just after the stop begins: the job must still complete.
        asyncio.get_running_loop().call_soon(service.gate("g").set)
    assert await status_of(store, res.id) is JobStatus.COMPLETED


async def test_paused_and_unrouted_types_stay_queued(
    store: Store, settings: Settings, dsn: str
) -> None:
    await store.set_queue_config(QueueConfig("scripted", paused=True))
    service = ScriptedService()
    async with running_worker(store, settings, {"scripted": service}, dsn) as worker:
        paused = await store.enqueue(NewJob("scripted"))
        unrouted = await store.enqueue(NewJob("nobody-renders-this"))
        await worker.refresh_config()
        await eventually(lambda: _heartbeat_seen(store))
        assert await status_of(store, paused.id) is JobStatus.QUEUED
        await store.set_queue_config(QueueConfig("scripted", paused=False))
        await worker.refresh_config()
        worker.wake()
        await wait_status(store, paused.id, JobStatus.COMPLETED)
    assert await status_of(store, unrouted.id) is JobStatus.QUEUED


async def _heartbeat_seen(store: Store) -> bool:
    """Wait for two more heartbeats of the worker: by then it has also polled (the test
    settings tick both every 0.5 s), so a job it was allowed to claim would be claimed."""
    for _ in range(2):
        before = await store.pool.fetchval("SELECT max(last_heartbeat) FROM vq.workers")

        async def beat(before: object = before) -> bool:
            after = await store.pool.fetchval("SELECT max(last_heartbeat) FROM vq.workers")
            return bool(after > before)

        await eventually(beat)
    return True


async def test_unhealthy_service_is_not_claimed_until_it_recovers(
    store: Store, settings: Settings, dsn: str
) -> None:
    service = ScriptedService()
    service.healthy = False
    async with running_worker(store, settings, {"scripted": service}, dsn) as worker:
        res = await store.enqueue(NewJob("scripted"))
        health = await store.list_service_health()
        assert health[0]["service"] == "scripted" and not health[0]["healthy"]
        worker.wake()
        await eventually(lambda: _heartbeat_seen(store))
        assert await status_of(store, res.id) is JobStatus.QUEUED
        assert service.calls == []
        service.healthy = True
        await worker.check_health()
        await wait_status(store, res.id, JobStatus.COMPLETED)


class Observer:
    def __init__(self) -> None:
        self.events: list[tuple[uuid.UUID, str, dict[str, Any]]] = []

    @hookimpl
    def vq_job_event(self, job_id: uuid.UUID, event: str, details: dict[str, Any]) -> None:
        self.events.append((job_id, event, details))

    @hookimpl
    def vq_categorise_error(self, exc: BaseException) -> ErrorCategory | None:
        return ErrorCategory.INVALID_INPUT if isinstance(exc, KeyError) else None

    @hookimpl
    def vq_retry_delay(self, attempt: int) -> float:
        return 0.0


async def test_hooks_observe_and_refine(store: Store, settings: Settings, dsn: str) -> None:
    observer = Observer()
    pm = make_plugin_manager(settings, load_entrypoints=False)
    pm.register(observer)
    service = ScriptedService()
    service.raise_for = lambda job: KeyError("question") if job.payload.get("bad") else None
    async with running_worker(store, settings, {"scripted": service}, dsn, pm=pm):
        ok = await store.enqueue(NewJob("scripted"))
        bad = await store.enqueue(NewJob("scripted", {"bad": True}))
        await wait_status(store, ok.id, JobStatus.COMPLETED)
        await wait_status(store, bad.id, JobStatus.FAILED)
    seen = {(job_id, event) for job_id, event, _ in observer.events}
    assert {(ok.id, "claimed"), (ok.id, "completed"), (bad.id, "failed")} <= seen
    failed = next(d for j, e, d in observer.events if e == "failed")
    assert failed["category"] == "INVALID_INPUT" and failed["job_type"] == "scripted"
    completed = next(d for j, e, d in observer.events if e == "completed")
    assert completed["duration_s"] >= 0


async def test_long_silent_workers_are_forgotten(
    store: Store, settings: Settings, dsn: str
) -> None:
    await store.register_worker("ghost", "gone-host", 1, 1, ["scripted"], 5.0)
    await store.pool.execute(
        "UPDATE vq.workers SET last_heartbeat = now() - interval '2 hours' WHERE id = 'ghost'"
    )
    async with running_worker(store, settings, {"scripted": ScriptedService()}, dsn) as worker:
        await worker.forget_dead_workers()
        assert [w.id for w in await store.list_workers()] == [worker.id]


async def test_dropped_database_connections_lose_no_job(
    store: Store, settings: Settings, dsn: str
) -> None:
    """Every server connection of the worker is killed, twice, mid-drain: all jobs still
    complete, each exactly once (a restarted database looks like this to the worker)."""
    import asyncpg

    n = 400
    killer = await asyncpg.connect(dsn)
    try:
        async with running_worker(store, settings, {"scripted": ScriptedService()}, dsn):
            await store.enqueue_many([NewJob("scripted", {"i": i}) for i in range(n)])
            for _ in range(2):
                await killer.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )

                async def some_progress() -> bool:
                    count: int = await killer.fetchval(
                        "SELECT count(*) FROM vq.jobs WHERE status = 'completed'"
                    )
                    return count > 0

                await eventually(some_progress, timeout=30)

            async def all_completed() -> bool:
                count: int = await killer.fetchval(
                    "SELECT count(*) FROM vq.jobs WHERE status = 'completed'"
                )
                return count == n

            await eventually(all_completed, timeout=60, interval=0.1)
        completions = await killer.fetchval(
            "SELECT count(*) FROM vq.job_events WHERE event = 'completed'"
        )
        assert completions == n
    finally:
        await killer.close()


async def test_an_open_circuit_is_recorded_as_unhealthy_and_stops_claims(
    store: Store, settings: Settings, dsn: str
) -> None:
    breaker = settings.model_copy(update={"breaker_threshold": 2, "breaker_cooldown": 3600.0})
    service = ScriptedService()
    service.raise_for = lambda job: ServiceError(ErrorCategory.API_ERROR, "503 from render")
    async with running_worker(store, breaker, {"scripted": service}, dsn):
        failing = await store.enqueue_many([NewJob("scripted", max_retries=0) for _ in range(2)])
        for r in failing:
            await wait_status(store, r.id, JobStatus.FAILED)

        async def recorded() -> bool:
            health = await store.list_service_health()
            return bool(health) and not health[0]["healthy"]

        await eventually(recorded)
        (health,) = await store.list_service_health()
        assert "circuit open" in health["detail"] and health["job_types"] == ["scripted"]
        waiting = await store.enqueue(NewJob("scripted"))
        await eventually(lambda: _heartbeat_seen(store))
        assert await status_of(store, waiting.id) is JobStatus.QUEUED
    assert len(service.calls) == 2
