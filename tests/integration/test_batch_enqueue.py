"""Batch enqueue without idempotency keys (enqueue_jobs): the batch travels as one JSON
document of columns, a column no job sets as [], and the ids are made inline in the
statement. These check that every column still lands on the right job."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from vq_core.models import JobStatus, NewJob, Priority, QueueConfig
from vq_core.store import Store


def _millis(job_id: uuid.UUID) -> int:
    return int.from_bytes(job_id.bytes[:6], "big")


async def test_columns_set_by_some_jobs_land_on_those_jobs(store: Store) -> None:
    await store.set_queue_config(QueueConfig("doubt", max_retries=7))
    later = datetime.now(UTC) + timedelta(hours=1)
    trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    batch = [
        NewJob("doubt", {"n": 0}),
        NewJob("diagram", {"n": 1}, Priority.URGENT, run_at=later, max_retries=0),
        NewJob("doubt", {"n": 2}, group_key="student-1", callback_url="http://127.0.0.1:9/cb"),
        NewJob("doubt", {}, Priority.LOW, trace_context=trace),
    ]
    results = await store.enqueue_many(batch)
    assert all(r.created for r in results)
    jobs = [await store.get_job(r.id) for r in results]

    assert [j.payload for j in jobs] == [{"n": 0}, {"n": 1}, {"n": 2}, {}]
    assert [j.job_type for j in jobs] == ["doubt", "diagram", "doubt", "doubt"]
    assert [j.priority for j in jobs] == [
        Priority.NORMAL,
        Priority.URGENT,
        Priority.NORMAL,
        Priority.LOW,
    ]
    # The type's default where the job sets none; an explicit 0 is kept, not dropped.
    assert [j.max_retries for j in jobs] == [7, 0, 7, 7]
    assert jobs[1].run_at == later
    assert all(j.run_at <= jobs[0].created_at for j in (jobs[0], jobs[2], jobs[3]))
    assert [j.group_key for j in jobs] == [None, None, "student-1", None]
    assert [j.callback_url for j in jobs] == [None, None, "http://127.0.0.1:9/cb", None]
    assert [j.trace_context for j in jobs] == [None, None, None, trace]
    assert all(j.status is JobStatus.QUEUED for j in jobs)
    for r in results:
        assert [e.event for e in await store.get_events(r.id)] == ["created"]


async def test_a_batch_without_optional_columns_takes_every_default(store: Store) -> None:
    await store.set_queue_config(QueueConfig("doubt", max_retries=5))
    results = await store.enqueue_many([NewJob("doubt", {"i": i}) for i in range(300)])
    rows = await store.pool.fetch(
        "SELECT id, payload, max_retries, run_at <= created_at AS due, group_key,"
        " callback_url, trace_context, fair_seq FROM vq.jobs"
    )
    by_id = {row["id"]: row for row in rows}
    assert [by_id[r.id]["payload"] for r in results] == [{"i": i} for i in range(300)]
    assert {row["max_retries"] for row in rows} == {5}
    assert all(row["due"] for row in rows)
    assert {(row["group_key"], row["callback_url"], row["trace_context"]) for row in rows} == {
        (None, None, None)
    }
    assert await store.pool.fetchval("SELECT count(*) FROM vq.job_events") == 300


async def test_batch_ids_have_the_uuid_v7_layout_of_vq_uuid_v7(store: Store) -> None:
    """The inline ids and vq.uuid_v7() (the column default) must stay the same layout."""
    results = await store.enqueue_many([NewJob("noop") for _ in range(500)])
    ids = [r.id for r in results]
    reference = await store.pool.fetchval("SELECT vq.uuid_v7()")
    db_now_ms = await store.pool.fetchval(
        "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    )
    assert len(set(ids)) == 500
    for job_id in ids:
        assert job_id.version == 7 == reference.version
        assert job_id.variant == uuid.RFC_4122 == reference.variant
        assert db_now_ms - 60_000 <= _millis(job_id) <= _millis(reference) <= db_now_ms
    # Time-ordered to the microsecond: never decreasing along the batch in its first
    # 64 bits (time and fraction); only ids of the same microsecond tie there.
    prefixes = [job_id.bytes[:8] for job_id in ids]
    assert prefixes == sorted(prefixes)


async def test_a_job_with_an_empty_trace_context_stores_none(store: Store) -> None:
    results = await store.enqueue_many([NewJob("noop", trace_context={}), NewJob("noop")])
    assert [(await store.get_job(r.id)).trace_context for r in results] == [None, None]
