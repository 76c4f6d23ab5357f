"""Steering the queue on a real database: cluster-wide caps (per type, per group, per
service) under concurrent claims and lease recovery, pause and re-route on a running
worker, turns between groups, the oldest-first share, bulk actions, and the actor of
every action.

The cap over several worker processes is in tests/e2e/test_cluster_limits.py; here
many connections claim at once through the store, which is what those processes do.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest
from support.helpers import ScriptedService, eventually, running_worker

from vq_core import db
from vq_core.config import Settings
from vq_core.errors import ServiceError, error_record
from vq_core.models import (
    Actor,
    ClaimedJob,
    ErrorCategory,
    JobFilter,
    JobStatus,
    NewJob,
    Priority,
    QueueConfig,
)
from vq_core.store import Store
from vq_core.validation import QueueConfigPatch

OPS = Actor("ops", "cli")
CLAIMERS = 12


async def configure(store: Store, job_type: str, **values: Any) -> QueueConfig:
    """Change a type's settings as an operator would."""
    return await store.update_queue_config(job_type, QueueConfigPatch(**values), OPS, 600.0)


@pytest.fixture
async def claimers(dsn: str) -> AsyncIterator[Store]:
    """A store with a connection for every concurrent claimer (as many workers would)."""
    pool = await db.create_pool(dsn, min_size=CLAIMERS, max_size=CLAIMERS + 2)
    other = Store(pool)
    yield other
    await other.close()


async def drain(
    claimers: Store,
    routes: Callable[[int], Mapping[str, str]],
    sample: Callable[[], Awaitable[int]],
    *,
    stale: int = 0,
    seed: int = 11,
) -> list[int]:
    """Claim with ``CLAIMERS`` connections at once, round after round, finishing a random
    half of what runs between rounds, until nothing is left; ``sample`` after every
    round of claims. Claimer ``i`` claims the types ``routes(i)`` (all of them capped),
    every other one oldest first: claimers that want different jobs are the ones whose
    row locks do not serialise them, so only the claim lock keeps them within the caps.
    The first ``stale`` claimers do not know of the caps (they claim as if no type were
    capped) and must get nothing of a capped type.
    """
    rng = random.Random(seed)
    held: list[tuple[str, ClaimedJob]] = []
    samples: list[int] = []
    for _ in range(500):
        batches = await asyncio.gather(
            *(
                claimers.claim(
                    f"w{i}",
                    routes(i),
                    3,
                    60,
                    limited=[] if i < stale else list(routes(i)),
                    oldest_first=i % 2 == 1,
                )
                for i in range(CLAIMERS)
            )
        )
        for i, batch in enumerate(batches):
            if i < stale:
                assert batch == [], "a claimer unaware of the caps took capped jobs"
            held += [(f"w{i}", job) for job in batch]
        samples.append(await sample())
        queued = await claimers.pool.fetchval(
            "SELECT count(*) FROM vq.jobs WHERE status = 'queued'"
        )
        if not held and not queued:
            return samples
        rng.shuffle(held)
        done, held = held[: (len(held) + 1) // 2], held[(len(held) + 1) // 2 :]
        for worker_id, job in done:
            assert await claimers.complete_many(worker_id, [(job.id, {})]) == [job.id]
    raise AssertionError(f"the queue did not drain; samples {samples[-20:]}")


def mixed(job_type: str, n: int, seed: int = 5, **fields: Any) -> list[NewJob]:
    """``n`` jobs of random priorities, so priority order and age order differ."""
    rng = random.Random(seed)
    return [
        NewJob(job_type, {"i": i}, priority=rng.choice(list(Priority)), **fields) for i in range(n)
    ]


# -- cluster-wide caps under concurrent claims ----------------------------------------


async def test_service_cap_holds_across_types_and_concurrent_claimers(
    store: Store, claimers: Store
) -> None:
    # Two types rendered by one service: the service's cap counts both.
    await store.set_service_limit("render", 3, OPS)
    await store.enqueue_many(mixed("a", 30) + mixed("b", 30))

    def routes(i: int) -> dict[str, str]:
        # Some workers render only one of the two types, some both.
        return [{"a": "render"}, {"b": "render"}, {"a": "render", "b": "render"}][i % 3]

    async def running_on_service() -> int:
        count: int = await store.pool.fetchval(
            "SELECT count(*) FROM vq.jobs WHERE status = 'running' AND service = 'render'"
        )
        return count

    samples = await drain(claimers, routes, running_on_service, stale=3)
    assert max(samples) <= 3, samples
    assert max(samples) == 3, samples
    completed = await store.pool.fetchval("SELECT count(*) FROM vq.jobs WHERE status = 'completed'")
    assert completed == 60


async def test_type_cap_holds_across_concurrent_claimers(store: Store, claimers: Store) -> None:
    await configure(store, "doubt", max_running=4)
    await store.enqueue_many(mixed("doubt", 60))

    async def running() -> int:
        count: int = await store.pool.fetchval(
            "SELECT count(*) FROM vq.jobs WHERE status = 'running' AND job_type = 'doubt'"
        )
        return count

    samples = await drain(claimers, lambda i: {"doubt": "svc"}, running, stale=3)
    assert max(samples) <= 4, samples
    assert max(samples) == 4, samples


async def test_group_cap_holds_and_jobs_without_a_group_are_not_held(
    store: Store, claimers: Store
) -> None:
    await configure(store, "doubt", max_running_per_group=2)
    for g in range(8):
        await store.enqueue_many(mixed("doubt", 6, seed=g, group_key=f"student-{g}"))
    await store.enqueue_many(mixed("doubt", 20))
    most_ungrouped = 0

    async def most_of_one_group() -> int:
        nonlocal most_ungrouped
        rows = await store.pool.fetch(
            "SELECT group_key, count(*) AS n FROM vq.jobs WHERE status = 'running'"
            " GROUP BY group_key"
        )
        counts = {r["group_key"]: r["n"] for r in rows}
        most_ungrouped = max(most_ungrouped, counts.pop(None, 0))
        return max(counts.values(), default=0)

    samples = await drain(claimers, lambda i: {"doubt": "svc"}, most_of_one_group)
    assert max(samples) <= 2, samples
    assert max(samples) == 2, samples
    assert most_ungrouped > 2  # no key, no group cap


async def test_lease_recovery_does_not_break_the_cap(store: Store, claimers: Store) -> None:
    await configure(store, "doubt", max_running=4)
    await store.enqueue_many(mixed("doubt", 12))
    routes = {"doubt": "svc"}
    first = await store.claim("dying", routes, 10, 0.5, limited=["doubt"])
    assert len(first) == 4

    async def expired() -> bool:
        return bool(
            await store.pool.fetchval(
                "SELECT bool_and(lease_expires_at < now()) FROM vq.jobs WHERE status = 'running'"
            )
        )

    await eventually(expired, timeout=10)
    # Expired but not yet recovered: still running as far as the cap is concerned.
    assert await store.claim("other", routes, 10, 60, limited=["doubt"]) == []

    # Recovery races with a crowd of claimers: together they must stay within the cap.
    recovered, *batches = await asyncio.gather(
        store.recover_expired_leases(),
        *(
            claimers.claim(f"w{i}", routes, 3, 60, limited=["doubt"], oldest_first=i % 2 == 1)
            for i in range(CLAIMERS)
        ),
    )
    assert len(recovered) == 4
    running = await store.pool.fetchval("SELECT count(*) FROM vq.jobs WHERE status = 'running'")
    assert running <= 4
    taken = [job for batch in batches for job in batch]
    taken += await store.claim("late", routes, 10, 60, limited=["doubt"])
    assert len(taken) == 4  # the slots the dead worker held are free again, exactly
    # The dead worker's late completions are refused and free no slot.
    assert await store.complete_many("dying", [(j.id, {}) for j in first]) == []
    assert await store.claim("more", routes, 10, 60, limited=["doubt"]) == []
    assert await store.pool.fetchval("SELECT count(*) FROM vq.jobs WHERE status = 'running'") == 4


# -- pause and re-route on a running worker ----------------------------------------


def slow_refresh(settings: Settings) -> Settings:
    """Settings whose periodic configuration refresh (and fallback poll) come once a
    minute, so a change seen within seconds came through the vq_config notification."""
    return settings.model_copy(update={"poll_interval": 60.0})


async def job_state(store: Store, ids: list[uuid.UUID]) -> list[tuple[Any, ...]]:
    rows = await store.pool.fetch(
        "SELECT j.id, j.status, j.retry_count, j.updated_at, j.run_at, j.worker_id,"
        " (SELECT array_agg(e.event ORDER BY e.id) FROM vq.job_events e WHERE e.job_id = j.id)"
        " AS events FROM vq.jobs j WHERE j.id = ANY($1::uuid[]) ORDER BY j.id",
        ids,
    )
    return [tuple(r) for r in rows]


async def test_pause_leaves_jobs_untouched_and_resume_runs_them(
    store: Store, settings: Settings, dsn: str
) -> None:
    service = ScriptedService(job_types=("doubt", "canary"))
    async with running_worker(store, slow_refresh(settings), {"scripted": service}, dsn) as w:
        await configure(store, "doubt", paused=True)

        async def knows_paused() -> bool:
            return "doubt" not in w.router.claimable_types()

        await eventually(knows_paused, timeout=5)
        ids = [r.id for r in await store.enqueue_many([NewJob("doubt") for _ in range(5)])]
        before = await job_state(store, ids)
        # A job of another type, queued after them, runs: the worker has claimed since.
        canary = await store.enqueue(NewJob("canary"))

        async def canary_done() -> bool:
            return (await store.get_job(canary.id)).status is JobStatus.COMPLETED

        await eventually(canary_done)
        # A worker that has not heard of the pause is refused by the database too.
        assert await store.claim("stale", {"doubt": "scripted"}, 10, 30) == []
        after = await job_state(store, ids)
        assert after == before
        assert all(state[1] == "queued" and state[6] == ["created"] for state in after)
        assert [j.job_type for j in service.calls] == ["canary"]

        await configure(store, "doubt", paused=False)

        async def all_done() -> bool:
            jobs = [await store.get_job(i) for i in ids]
            return all(j.status is JobStatus.COMPLETED for j in jobs)

        await eventually(all_done, timeout=10)


async def test_reroute_takes_effect_without_a_restart(
    store: Store, settings: Settings, dsn: str
) -> None:
    first, second = ScriptedService("first", ("doubt",)), ScriptedService("second", ())
    await configure(store, "doubt", service="first")
    services = {"first": first, "second": second}
    async with running_worker(store, slow_refresh(settings), services, dsn) as worker:
        before = await store.enqueue(NewJob("doubt", {"n": 1}))
        await eventually(lambda: _completed(store, before.id))
        assert (await store.get_job(before.id)).service == "first"

        t0 = time.monotonic()
        await configure(store, "doubt", service="second")

        async def rerouted() -> bool:
            return worker.router.routes().get("doubt") == "second"

        await eventually(rerouted, timeout=5)
        # Well before the minute the periodic refresh would take.
        assert time.monotonic() - t0 < 5
        after = await store.enqueue(NewJob("doubt", {"n": 2}))
        await eventually(lambda: _completed(store, after.id))
    assert (await store.get_job(after.id)).service == "second"
    assert [j.payload["n"] for j in first.calls] == [1]
    assert [j.payload["n"] for j in second.calls] == [2]


async def _completed(store: Store, job_id: uuid.UUID) -> bool:
    return (await store.get_job(job_id)).status is JobStatus.COMPLETED


# -- turns between groups, and the oldest-first share -------------------------------


@pytest.mark.parametrize("capped", [False, True], ids=["plain-claim", "capped-claim"])
async def test_lone_job_of_another_group_starts_within_the_first_claims(
    store: Store, capped: bool
) -> None:
    limited = ["doubt"] if capped else []
    if capped:
        # A cap that never binds sends the claim through the capped path.
        await configure(store, "doubt", max_running_per_group=100)
    await store.enqueue_many([NewJob("doubt", {"i": i}, group_key="alice") for i in range(50)])
    lone = await store.enqueue(NewJob("doubt", {"lone": True}, group_key="bob"))
    order = [
        job.id
        for _ in range(51)
        for job in await store.claim("w", {"doubt": "svc"}, 1, 60, limited=limited)
    ]
    assert len(order) == 51
    assert order.index(lone.id) < 3


async def test_without_group_keys_the_lone_job_waits_its_turn(store: Store) -> None:
    # The control of the test above: the same jobs without keys are claimed in
    # arrival order, so the lone job comes last (the fairness is the keys' doing).
    await store.enqueue_many([NewJob("doubt", {"i": i}) for i in range(50)])
    lone = await store.enqueue(NewJob("doubt", {"lone": True}))
    order = [job.id for _ in range(51) for job in await store.claim("w", {"doubt": "svc"}, 1, 60)]
    assert order.index(lone.id) == 50


async def run_under_high_stream(
    store: Store,
    settings: Settings,
    dsn: str,
    every: int,
    until: Callable[[], Awaitable[bool]],
) -> list[uuid.UUID]:
    """Five old low-priority jobs, then a worker under a stream of high-priority jobs
    that never lets the high queue run dry, until ``until``; the low jobs' ids."""
    low = [r.id for r in await store.enqueue_many([NewJob("doubt", priority=Priority.LOW)] * 5)]
    stop = asyncio.Event()

    async def produce() -> None:
        while not stop.is_set():
            queued = await store.pool.fetchval(
                "SELECT count(*) FROM vq.jobs WHERE status = 'queued' AND priority = $1",
                int(Priority.HIGH),
            )
            if queued < 100:
                await store.enqueue_many([NewJob("doubt", priority=Priority.HIGH)] * 100)
            await asyncio.sleep(0.005)  # pacing the producer, not synchronisation

    producer = asyncio.create_task(produce())
    # No prefetch: its claims of hundreds would empty the high queue between refills,
    # and the low jobs would start in a lull instead of by their share of the claims.
    tuned = settings.model_copy(
        update={"concurrency": 2, "claim_oldest_every": every, "prefetch": 0}
    )
    try:
        async with running_worker(
            store, tuned, {"scripted": ScriptedService("scripted", ("doubt",))}, dsn
        ):
            await eventually(until, timeout=60, interval=0.05)
    finally:
        stop.set()
        await producer
    return low


async def test_low_priority_jobs_complete_under_a_steady_high_priority_stream(
    store: Store, settings: Settings, dsn: str
) -> None:
    async def low_done() -> bool:
        done = await store.pool.fetchval(
            "SELECT count(*) FROM vq.jobs WHERE priority = $1 AND status = 'completed'",
            int(Priority.LOW),
        )
        return bool(done == 5)

    low = await run_under_high_stream(store, settings, dsn, 10, low_done)
    # Each low job jumped the high ones waiting when it started: the share did it,
    # not a lull in the stream.
    jumped = await store.pool.fetch(
        "SELECT l.id, (SELECT count(*) FROM vq.jobs h WHERE h.priority = $2"
        "   AND h.created_at < l.started_at"
        "   AND (h.started_at IS NULL OR h.started_at > l.started_at)) AS waiting"
        " FROM vq.jobs l WHERE l.id = ANY($1::uuid[])",
        low,
        int(Priority.HIGH),
    )
    assert all(r["waiting"] > 0 for r in jumped), [dict(r) for r in jumped]


async def test_with_strict_priority_low_jobs_would_wait_for_ever(
    store: Store, settings: Settings, dsn: str
) -> None:
    # claim_oldest_every=0: under the same stream the low jobs never start, which is
    # why the share exists (the test above fails without it).
    async def many_high_done() -> bool:
        done = await store.pool.fetchval(
            "SELECT count(*) FROM vq.jobs WHERE priority = $1 AND status = 'completed'",
            int(Priority.HIGH),
        )
        return bool(done >= 300)

    low = await run_under_high_stream(store, settings, dsn, 0, many_high_done)
    states = await store.pool.fetch(
        "SELECT status, started_at FROM vq.jobs WHERE id = ANY($1::uuid[])", low
    )
    assert all(r["status"] == "queued" and r["started_at"] is None for r in states)


# -- bulk actions and actors --------------------------------------------------------


async def fail_jobs(store: Store, jobs: list[ClaimedJob], category: ErrorCategory) -> None:
    """Fail claimed jobs for good as the worker records a service's error."""
    error = error_record(ServiceError(category, "render broke", service="svc"), category, 1, False)
    for i in range(0, len(jobs), 100):
        await asyncio.gather(*(store.fail("w", j.id, error, None) for j in jobs[i : i + 100]))


async def test_bulk_retry_of_1000_failed_jobs_of_one_category(store: Store) -> None:
    await store.enqueue_many([NewJob("doubt", {"i": i}, max_retries=0) for i in range(1300)])
    claimed = await store.claim("w", {"doubt": "svc"}, 1300, 120)
    assert len(claimed) == 1300
    await fail_jobs(store, claimed[:1000], ErrorCategory.API_ERROR)
    await fail_jobs(store, claimed[1000:], ErrorCategory.TIMEOUT)
    others = [j.id for j in claimed[1000:]]
    others_before = await job_state(store, others)
    filters = JobFilter(category=ErrorCategory.API_ERROR)
    assert await store.count_actionable(filters, "retry") == 1000

    result = await store.bulk_retry(filters, Actor("ops", "page"))

    assert (result.action, result.acted) == ("retry", 1000)
    rows = await store.pool.fetch(
        "SELECT status, retry_count, error FROM vq.jobs WHERE id = ANY($1::uuid[])",
        [j.id for j in claimed[:1000]],
    )
    assert all(
        r["status"] == "queued" and r["retry_count"] == 0 and r["error"] is None for r in rows
    )
    retried = await store.pool.fetch(
        "SELECT job_id, details FROM vq.job_events WHERE event = 'retried'"
    )
    assert len(retried) == 1000
    assert {r["job_id"] for r in retried} == {j.id for j in claimed[:1000]}
    assert all(r["details"] == {"by": "ops", "via": "page"} for r in retried)
    assert await job_state(store, others) == others_before  # other categories untouched
    assert await store.count_actionable(filters, "retry") == 0


async def test_bulk_cancel_matches_queued_and_running(store: Store) -> None:
    await store.enqueue_many([NewJob("doubt", {"i": i}) for i in range(30)])
    keep = [r.id for r in await store.enqueue_many([NewJob("other") for _ in range(5)])]
    running = await store.claim("w", {"doubt": "svc"}, 10, 60)
    filters = JobFilter(job_type="doubt")
    assert await store.count_actionable(filters, "cancel") == 30
    kept_before = await job_state(store, keep)

    result = await store.bulk_cancel(filters, Actor("ops", "api"))

    assert (result.acted, result.running) == (30, 10)
    rows = await store.pool.fetch(
        "SELECT status::text, count(*) FROM vq.jobs WHERE job_type = 'doubt' GROUP BY 1"
    )
    counts = {r[0]: r[1] for r in rows}
    assert counts == {"cancelled": 20, "running": 10}
    asked = await store.pool.fetchval(
        "SELECT count(*) FROM vq.jobs WHERE id = ANY($1::uuid[]) AND cancel_requested",
        [j.id for j in running],
    )
    assert asked == 10
    assert await job_state(store, keep) == kept_before
    # Asked once: a second bulk cancel finds nothing left to act on.
    assert await store.count_actionable(filters, "cancel") == 10
    assert (await store.bulk_cancel(filters, Actor("ops", "api"))).acted == 0


async def test_every_action_leaves_its_actor_in_the_history(store: Store) -> None:
    a = (await store.enqueue(NewJob("doubt", {"n": 1}))).id
    await store.cancel(a, actor=Actor("alice", "page"))
    await store.retry(a, actor=Actor("bob", "api"))
    b = (await store.enqueue(NewJob("doubt", {"n": 2}, max_retries=0))).id
    c = (await store.enqueue(NewJob("doubt", {"n": 3}))).id
    claimed = {j.id: j for j in await store.claim("w", {"doubt": "svc"}, 10, 60)}
    assert set(claimed) == {a, b, c}
    await fail_jobs(store, [claimed[b]], ErrorCategory.NETWORK)
    await store.bulk_retry(JobFilter(status=JobStatus.FAILED), Actor("carol", "cli"))
    await store.cancel(c, actor=Actor("dave", "api"))  # running: its worker is asked
    # a is running, b queued again, c asked already (left alone).
    await store.bulk_cancel(JobFilter(job_type="doubt"), Actor("erin", "page"))

    async def operators(job_id: uuid.UUID) -> list[tuple[str, Any]]:
        # The worker's own events carry its id; the operators' carry who and how.
        events = await store.get_events(job_id)
        return [
            (e.event, e.details) for e in events if e.worker_id is None and e.event != "created"
        ]

    assert await operators(a) == [
        ("cancelled", {"by": "alice", "via": "page"}),
        ("retried", {"by": "bob", "via": "api"}),
        ("cancel_requested", {"by": "erin", "via": "page"}),
    ]
    assert await operators(b) == [
        ("retried", {"by": "carol", "via": "cli"}),
        ("cancelled", {"by": "erin", "via": "page"}),
    ]
    assert await operators(c) == [("cancel_requested", {"by": "dave", "via": "api"})]


async def test_every_config_change_is_recorded_with_actor_and_via(store: Store) -> None:
    await store.update_queue_config(
        "doubt", QueueConfigPatch(paused=True, max_running=4), Actor("alice", "page"), 600.0
    )
    await store.update_queue_config(
        "doubt", QueueConfigPatch(service="render"), Actor("bob", "api"), 600.0
    )
    # No change, no record.
    await store.update_queue_config(
        "doubt", QueueConfigPatch(service="render"), Actor("bob", "api"), 600.0
    )
    await store.set_service_limit("render", 3, Actor("carol", "cli"))
    await store.set_service_limit("render", None, Actor("dave", "page"))

    changes = list(reversed(await store.config_changes()))
    assert [(c.subject, c.actor, c.via, c.changes) for c in changes] == [
        ("type:doubt", "alice", "page", {"paused": [False, True], "max_running": [None, 4]}),
        ("type:doubt", "bob", "api", {"service": [None, "render"]}),
        ("service:render", "carol", "cli", {"max_running": [None, 3]}),
        ("service:render", "dave", "page", {"max_running": [3, None]}),
    ]
    config = (await store.list_queue_config())["doubt"]
    assert config.updated_by == "bob"
    assert [c.actor for c in await store.config_changes("type:doubt")] == ["bob", "alice"]
