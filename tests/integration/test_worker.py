"""A real worker on a real database: execution, retries, timeouts, cancel, shutdown."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from support.helpers import ScriptedService, eventually, running_worker

from vq_core import hookimpl
from vq_core.config import Settings
from vq_core.errors import ServiceError
from vq_core.models import ClaimedJob, ErrorCategory, JobStatus, NewJob, Priority, QueueConfig
from vq_core.plugins import make_plugin_manager
from vq_core.store import Store
from vq_core.worker.process import Worker


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


async def test_a_success_after_a_failure_clears_the_error_and_history_keeps_it(
    store: Store, settings: Settings, dsn: str
) -> None:
    service = ScriptedService()
    service.raise_for = lambda job: (
        ServiceError(ErrorCategory.API_ERROR, "render server said 503", status_code=503)
        if job.retry_count == 0
        else None
    )
    async with running_worker(store, settings, {"scripted": service}, dsn):
        res = await store.enqueue(NewJob("scripted", max_retries=2))
        await wait_status(store, res.id, JobStatus.COMPLETED)
    job = await store.get_job(res.id)
    assert len(service.calls) == 2 and job.retry_count == 1
    assert job.error is None and job.result == {"ok": True}
    events = await store.get_events(res.id)
    assert [e.event for e in events] == [
        "created",
        "claimed",
        "retry_scheduled",
        "claimed",
        "completed",
    ]
    failed_attempt = events[2].details or {}
    assert failed_attempt["message"] == "render server said 503"
    assert failed_attempt["type"] == "API_ERROR" and failed_attempt["status_code"] == 503
    assert failed_attempt["attempt"] == 1 and "Traceback" in failed_attempt["stack"]


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


async def test_a_payload_that_is_not_an_object_fails_once_as_invalid_input(
    store: Store, settings: Settings, dsn: str
) -> None:
    # Such rows predate migration 0009 or bypassed it: drop its check to write them.
    await store.pool.execute("ALTER TABLE vq.jobs DROP CONSTRAINT jobs_payload_check")
    payloads = {"[1, 2]": "array", '"str"': "string", "null": "null", "7": "number"}
    ids = {
        await store.pool.fetchval(
            "INSERT INTO vq.jobs (job_type, payload, max_retries)"
            " VALUES ('scripted', $1::text::jsonb, 5) RETURNING id",
            text,
        ): kind
        for text, kind in payloads.items()
    }
    service = ScriptedService()
    async with running_worker(store, settings, {"scripted": service}, dsn):
        for job_id in ids:
            await wait_status(store, job_id, JobStatus.FAILED)
        good = await store.enqueue(NewJob("scripted"))
        await wait_status(store, good.id, JobStatus.COMPLETED)
    assert len(service.calls) == 1  # only the good job reached the service
    for job_id, kind in ids.items():
        job = await store.get_job(job_id)
        error = job.error or {}
        assert error["type"] == "INVALID_INPUT" and error["retryable"] is False
        assert error["message"] == f"payload: must be a JSON object, not a JSON {kind}"
        assert job.retry_count == 0
        events = [e.event for e in await store.get_events(job_id)]
        assert events == ["claimed", "failed"]  # inserted by hand: no "created"


@pytest.mark.parametrize("timeout_s", [float("nan"), float("inf"), 0.0])
async def test_a_timeout_the_schema_would_refuse_falls_back_to_default_timeout(
    store: Store, settings: Settings, dsn: str, caplog: pytest.LogCaptureFixture, timeout_s: float
) -> None:
    # A row from before migration 0009 (or a hand-dropped check): the worker falls
    # back to default_timeout rather than failing every job of the type (uvloop's
    # call_at raises on NaN) or never timing out (asyncio may never fire a NaN timer).
    await store.pool.execute(
        "ALTER TABLE vq.job_queue_config DROP CONSTRAINT job_queue_config_timeout_s_check"
    )
    await store.pool.execute(
        "INSERT INTO vq.job_queue_config (job_type, timeout_s) VALUES ('scripted', $1)", timeout_s
    )
    short = settings.model_copy(update={"default_timeout": 0.5})
    async with running_worker(store, short, {"scripted": ScriptedService()}, dsn):
        res = await store.enqueue(NewJob("scripted", {"hold": "never"}, max_retries=0))
        await wait_status(store, res.id, JobStatus.FAILED)
    error = (await store.get_job(res.id)).error or {}
    assert error["type"] == "TIMEOUT" and error["message"] == "render timed out after 0.5s"
    warnings = [r.getMessage() for r in caplog.records if r.name == "vq.job"]
    assert f"job {res.id}: timeout_s of scripted is {timeout_s!r}; using default_timeout" in (
        " ".join(warnings)
    )


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
        # The hold reports progress first; let it land, or its event may follow the cancel.
        await eventually(lambda: _has_progress(store, res.id))
        await store.cancel(res.id)
        await wait_status(store, res.id, JobStatus.CANCELLED)
    events = [e.event for e in await store.get_events(res.id)]
    assert events[-2:] == ["cancel_requested", "cancelled"]


async def _has_progress(store: Store, job_id: uuid.UUID) -> bool:
    return (await store.get_job(job_id)).progress is not None


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


class ClaimCountingStore(Store):
    """The real store on the same pool, running the real claim SQL, that numbers the
    claims it runs: a test can then wait until the worker has looked at the queue."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.pool, store.default_max_retries)
        self.begun = 0
        self.finished: list[tuple[int, list[str]]] = []  # (number, types asked for)

    async def claim(
        self,
        worker_id: str,
        routes: Mapping[str, str],
        limit: int,
        lease_seconds: float,
        **options: Any,
    ) -> list[ClaimedJob]:
        number = self.begun
        self.begun += 1
        try:
            return await super().claim(worker_id, routes, limit, lease_seconds, **options)
        finally:
            self.finished.append((number, list(routes)))

    async def claimed_since_now(self, worker: Worker) -> list[str]:
        """Wake ``worker`` and wait until a claim it began after this call has finished;
        returns the types that claim asked for. A job of a type it may claim would be
        running now (or already done)."""
        mark = self.begun
        worker.wake()

        async def one_after_mark() -> list[str] | None:
            return next((types for n, types in self.finished if n >= mark), None)

        types = await eventually(one_after_mark)
        assert types is not None  # eventually returns only a truthy value
        return types


def probe_service() -> ScriptedService:
    """A second, always healthy service: its type keeps the worker claiming while the
    type under test may not be claimed (a worker with nothing to claim asks nothing)."""
    return ScriptedService("probe", job_types=("probe",))


async def test_paused_and_unrouted_types_stay_queued(
    store: Store, settings: Settings, dsn: str
) -> None:
    await store.set_queue_config(QueueConfig("scripted", paused=True))
    service = ScriptedService()
    counting = ClaimCountingStore(store)
    services = {"scripted": service, "probe": probe_service()}
    async with running_worker(counting, settings, services, dsn) as worker:
        paused = await store.enqueue(NewJob("scripted"))
        unrouted = await store.enqueue(NewJob("nobody-renders-this"))
        await worker.refresh_config()
        assert await counting.claimed_since_now(worker) == ["probe"]
        assert await status_of(store, paused.id) is JobStatus.QUEUED
        await store.set_queue_config(QueueConfig("scripted", paused=False))
        await worker.refresh_config()
        worker.wake()
        await wait_status(store, paused.id, JobStatus.COMPLETED)
        assert await counting.claimed_since_now(worker) == ["probe", "scripted"]
    assert await status_of(store, unrouted.id) is JobStatus.QUEUED
    assert all("nobody-renders-this" not in types for _, types in counting.finished)


async def test_unhealthy_service_is_not_claimed_until_it_recovers(
    store: Store, settings: Settings, dsn: str
) -> None:
    service = ScriptedService()
    service.healthy = False
    counting = ClaimCountingStore(store)
    services = {"scripted": service, "probe": probe_service()}
    async with running_worker(counting, settings, services, dsn) as worker:
        res = await store.enqueue(NewJob("scripted"))
        health = {h["service"]: h["healthy"] for h in await store.list_service_health()}
        assert health == {"probe": True, "scripted": False}
        assert await counting.claimed_since_now(worker) == ["probe"]
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
    store: Store, settings: Settings, dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Every server connection of the worker is killed, twice, mid-drain: all jobs still
    complete, each exactly once (a restarted database looks like this to the worker),
    and none is reported lost. (A kill that lands between a completion's commit and its
    reply is rare here; tests/integration/test_lost_replies.py makes it certain.)"""
    import asyncpg

    caplog.set_level(logging.WARNING, logger="vq")
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
    assert not [r.getMessage() for r in caplog.records if "lease was lost" in r.getMessage()]


async def test_an_open_circuit_is_recorded_as_unhealthy_and_stops_claims(
    store: Store, settings: Settings, dsn: str
) -> None:
    breaker = settings.model_copy(update={"breaker_threshold": 2, "breaker_cooldown": 3600.0})
    service = ScriptedService()
    service.raise_for = lambda job: ServiceError(ErrorCategory.API_ERROR, "503 from render")
    counting = ClaimCountingStore(store)
    services = {"scripted": service, "probe": probe_service()}
    async with running_worker(counting, breaker, services, dsn) as worker:
        failing = await store.enqueue_many([NewJob("scripted", max_retries=0) for _ in range(2)])
        for r in failing:
            await wait_status(store, r.id, JobStatus.FAILED)

        async def recorded() -> dict[str, Any] | None:
            health = {h["service"]: h for h in await store.list_service_health()}
            scripted = health.get("scripted")
            return scripted if scripted and not scripted["healthy"] else None

        health = await eventually(recorded)
        assert health is not None and "circuit open" in health["detail"]
        assert health["job_types"] == ["scripted"]
        waiting = await store.enqueue(NewJob("scripted"))
        assert await counting.claimed_since_now(worker) == ["probe"]
        assert await status_of(store, waiting.id) is JobStatus.QUEUED
    assert len(service.calls) == 2


def fail_when_asked(job: ClaimedJob) -> BaseException | None:
    """A service answer: a 503 for jobs whose payload says ``fail``, else a result."""
    if job.payload.get("fail"):
        return ServiceError(ErrorCategory.API_ERROR, "503 from render")
    return None


async def _open_the_circuit(
    store: Store, counting: ClaimCountingStore, worker: Worker
) -> uuid.UUID:
    """Fail one job (the threshold is 1), then show a new job waits: returns its id."""
    failing = await store.enqueue(NewJob("scripted", {"fail": True}, max_retries=0))
    await wait_status(store, failing.id, JobStatus.FAILED)
    waiting = await store.enqueue(NewJob("scripted"))
    assert await counting.claimed_since_now(worker) == ["probe"]
    assert await status_of(store, waiting.id) is JobStatus.QUEUED
    return waiting.id


async def test_an_open_circuit_closes_after_the_cooldown(
    store: Store, settings: Settings, dsn: str
) -> None:
    # No health check after the first: only the cooldown can close the circuit.
    breaker = settings.model_copy(
        update={"breaker_threshold": 1, "breaker_cooldown": 3.0, "health_check_interval": 3600}
    )
    service = ScriptedService()
    service.raise_for = fail_when_asked
    counting = ClaimCountingStore(store)
    services = {"scripted": service, "probe": probe_service()}
    async with running_worker(counting, breaker, services, dsn) as worker:
        waiting = await _open_the_circuit(store, counting, worker)
        await wait_status(store, waiting, JobStatus.COMPLETED)
    assert len(service.calls) == 2


async def test_a_passing_health_check_closes_an_open_circuit(
    store: Store, settings: Settings, dsn: str
) -> None:
    breaker = settings.model_copy(
        update={"breaker_threshold": 1, "breaker_cooldown": 3600.0, "health_check_interval": 3600}
    )
    service = ScriptedService()
    service.raise_for = fail_when_asked
    counting = ClaimCountingStore(store)
    services = {"scripted": service, "probe": probe_service()}
    async with running_worker(counting, breaker, services, dsn) as worker:
        waiting = await _open_the_circuit(store, counting, worker)
        await worker.check_health()
        assert await counting.claimed_since_now(worker) == ["probe", "scripted"]
        await wait_status(store, waiting, JobStatus.COMPLETED)
    health = {h["service"]: h["healthy"] for h in await store.list_service_health()}
    assert health == {"probe": True, "scripted": True}


async def test_a_job_longer_than_three_leases_stays_with_its_first_worker(
    store: Store, settings: Settings, dsn: str
) -> None:
    """The worker renews the lease while the job runs: a second worker, recovering
    expired leases all along, never takes the job; it is claimed and completed once."""
    short = settings.model_copy(update={"lease_seconds": 2.0, "lease_recovery_interval": 0.2})
    lease = short.lease_seconds
    service = ScriptedService()  # shared: its calls count the renders of both workers
    async with running_worker(store, short, {"scripted": service}, dsn) as first:
        res = await store.enqueue(NewJob("scripted", {"hold": "long"}, max_retries=0))
        await asyncio.wait_for(service.started_event("long").wait(), 10)
        began = await store.pool.fetchval("SELECT now()")
        async with running_worker(store, short, {"scripted": service}, dsn) as second:

            async def three_leases_later() -> bool:
                # The database's clock, the one the leases are written in.
                waited: float = await store.pool.fetchval(
                    "SELECT extract(epoch FROM now() - $1::timestamptz)::float8", began
                )
                return waited > 3.2 * lease

            await eventually(three_leases_later, timeout=30)
            job = await store.get_job(res.id)
            assert job.status is JobStatus.RUNNING and job.worker_id == first.id
            service.gate("long").set()
            await wait_status(store, res.id, JobStatus.COMPLETED)
    events = await store.get_events(res.id)
    assert [e.worker_id for e in events if e.event == "claimed"] == [first.id]
    assert [e.worker_id for e in events if e.event == "completed"] == [first.id]
    assert not {"released", "lease_expired"} & {e.event for e in events}
    assert len(service.calls) == 1 and second.id != first.id
