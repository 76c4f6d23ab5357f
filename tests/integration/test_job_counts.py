"""vq.job_counts (migration 0016): the finished counts kept by triggers equal a live count
of vq.jobs after every kind of change, and Store.stats() / the types overview read them."""

from __future__ import annotations

import asyncio

import asyncpg

from vq_core.models import Actor, JobFilter, JobStatus, NewJob, Priority
from vq_core.store import Store

ACTOR = Actor("tester", "cli")

# What the table holds, counted the slow way: the truth the rollup must equal.
LIVE = """
SELECT status::text AS status, job_type, priority, count(*) AS n
  FROM vq.jobs GROUP BY status, job_type, priority
"""
ROLLUP = """
SELECT status::text AS status, job_type, priority, sum(n) AS n
  FROM vq.job_counts GROUP BY status, job_type, priority HAVING sum(n) <> 0
"""
FINISHED = {"completed", "failed", "cancelled"}


async def _keyed(pool: asyncpg.Pool, query: str) -> dict[tuple[str, str, int], int]:
    return {
        (r["status"], r["job_type"], r["priority"]): int(r["n"]) for r in await pool.fetch(query)
    }


async def assert_counts_exact(store: Store) -> dict[tuple[str, str, int], int]:
    """The rollup equals the live finished counts, and stats() equals the live counts."""
    live = await _keyed(store.pool, LIVE)
    finished = {k: n for k, n in live.items() if k[0] in FINISHED}
    assert await _keyed(store.pool, ROLLUP) == finished
    stats = await store.stats()
    by_status = {s.value: 0 for s in JobStatus}
    by_type: dict[str, dict[str, int]] = {}
    by_priority: dict[str, dict[str, int]] = {}
    for (status, job_type, priority), n in live.items():
        by_status[status] += n
        by_type.setdefault(job_type, {}).setdefault(status, 0)
        by_type[job_type][status] += n
        label = Priority(priority).label
        by_priority.setdefault(label, {}).setdefault(status, 0)
        by_priority[label][status] += n
    assert stats["by_status"] == by_status
    assert stats["by_type"] == dict(sorted(by_type.items()))
    assert stats["by_priority"] == by_priority
    assert stats["total"] == sum(live.values())
    return live


async def test_rollup_equals_a_live_count_after_every_kind_of_change(store: Store) -> None:
    pool = store.pool
    # Enqueue: one by one and in a batch, two types, several priorities.
    await store.enqueue(NewJob("doubt", {"q": 0}, priority=Priority.HIGH))
    batch = await store.enqueue_many(
        [
            NewJob("doubt" if i % 3 else "diagram", {"q": i}, priority=Priority(i % 4))
            for i in range(30)
        ]
    )
    await assert_counts_exact(store)

    # Claim and complete in batches, from two "workers" at once.
    claimed = await asyncio.gather(
        store.claim("w1", {"doubt": "noop", "diagram": "noop"}, 8, 30),
        store.claim("w2", {"doubt": "noop", "diagram": "noop"}, 8, 30),
    )
    await assert_counts_exact(store)
    for worker, jobs in zip(("w1", "w2"), claimed, strict=True):
        done = await store.complete_many(worker, [(j.id, {"ok": True}) for j in jobs[:6]])
        assert len(done) == 6
    # Completing again (a retry after a lost reply) changes nothing.
    await store.complete_many("w1", [(claimed[0][0].id, {"ok": True})])
    live = await assert_counts_exact(store)
    assert sum(n for (s, _, _), n in live.items() if s == "completed") == 12

    # Fail: once with a retry (back to queued), once for good.
    w1_left = claimed[0][6:]
    assert await store.fail("w1", w1_left[0].id, {"message": "x", "type": "t"}, 0.0) == (
        JobStatus.QUEUED
    )
    assert await store.fail("w1", w1_left[1].id, {"message": "y", "type": "t"}, None) == (
        JobStatus.FAILED
    )
    await assert_counts_exact(store)

    # Cancel a queued job, and the running ones of w2 (cancel asks, then the worker stops).
    queued = (await store.list_jobs(JobFilter(status=JobStatus.QUEUED), limit=1)).jobs[0]
    await store.cancel(queued.id, ACTOR)
    for job in claimed[1][6:]:
        await store.cancel(job.id, ACTOR)
        await store.fail("w2", job.id, {"message": "stop", "type": "cancelled"}, None)
    await assert_counts_exact(store)

    # Retry a failed job (failed -> queued) and a cancelled one.
    await store.retry(w1_left[1].id, ACTOR)
    await store.retry(queued.id, ACTOR)
    await assert_counts_exact(store)

    # Fail some for good, then the bulk actions: retry every failed diagram, cancel
    # every queued doubt.
    more = await store.claim("w3", {"doubt": "noop", "diagram": "noop"}, 6, 30)
    for job in more:
        await store.fail("w3", job.id, {"message": "z", "type": "t"}, None)
    retried = await store.bulk_retry(JobFilter(status=JobStatus.FAILED, job_type="diagram"), ACTOR)
    cancelled = await store.bulk_cancel(JobFilter(status=JobStatus.QUEUED, job_type="doubt"), ACTOR)
    assert retried.acted + cancelled.acted > 0
    await assert_counts_exact(store)

    # A finished job whose priority changes (an operator's UPDATE) moves between keys.
    await pool.execute(
        "UPDATE vq.jobs SET priority = 0 WHERE status = 'completed' AND priority <> 0"
    )
    await assert_counts_exact(store)

    # Prune: finished jobs aged past the cut are deleted, with their history.
    aged = await pool.execute(
        "UPDATE vq.jobs SET completed_at = now() - interval '30 days'"
        " WHERE status IN ('completed', 'cancelled') AND id <> $1",
        batch[0].id,
    )
    assert aged != "UPDATE 0"
    assert await store.prune(7 * 86400, batch=2) > 0
    live = await assert_counts_exact(store)
    assert any(s in FINISHED for s, _, _ in live)  # some finished jobs are left to count

    # Inserting finished rows (an import, a restore by hand) counts them, row by row.
    await pool.execute(
        "INSERT INTO vq.jobs (job_type, status, priority, completed_at)"
        " SELECT 'compose', 'completed', i % 4, now() FROM generate_series(1, 5) i"
    )
    await assert_counts_exact(store)

    # The rebuild gives the same counts, and so does a TRUNCATE (nothing left).
    before = await _keyed(pool, ROLLUP)
    total = await pool.fetchval("SELECT vq.rebuild_job_counts()")
    assert total == sum(before.values())
    assert await _keyed(pool, ROLLUP) == before
    assert await pool.fetchval("SELECT count(*) FROM vq.job_counts WHERE shard <> 0") == 0
    await pool.execute("TRUNCATE vq.jobs CASCADE")
    assert await _keyed(pool, ROLLUP) == {}
    await assert_counts_exact(store)


async def test_a_change_rolled_back_leaves_the_counts_alone(store: Store) -> None:
    jobs = await store.enqueue_many([NewJob("doubt", {"q": i}) for i in range(4)])
    await store.claim("w", {"doubt": "noop"}, 4, 30)
    await store.complete_many("w", [(j.id, {}) for j in jobs])
    async with store.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("DELETE FROM vq.jobs")
        assert await conn.fetchval("SELECT sum(n) FROM vq.job_counts") == 0
        await tx.rollback()
    live = await assert_counts_exact(store)
    assert live == {("completed", "doubt", int(Priority.NORMAL)): 4}


async def test_the_types_overview_reads_the_same_counts(store: Store) -> None:
    jobs = await store.enqueue_many([NewJob("doubt", {"q": i}) for i in range(5)])
    await store.enqueue(NewJob("diagram", {}))
    await store.claim("w", {"doubt": "noop"}, 3, 30)
    await store.complete_many("w", [(jobs[0].id, {}), (jobs[1].id, {})])
    await store.fail("w", jobs[2].id, {"message": "x", "type": "t"}, None)
    states = {t.job_type: t for t in await store.type_states(60.0)}
    assert states["doubt"].counts == {
        "ready": 2,
        "scheduled": 0,
        "running": 0,
        "completed": 2,
        "failed": 1,
        "cancelled": 0,
    }
    assert states["diagram"].counts["ready"] == 1
    assert states["diagram"].counts["completed"] == 0
