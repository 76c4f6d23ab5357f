"""The store against a real PostgreSQL: every state change and its history."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from vq_core.errors import InvalidInput, InvalidTransition, JobNotFound
from vq_core.models import Actor, JobFilter, JobStatus, NewJob, Priority, QueueConfig
from vq_core.store import Store


async def events_of(store: Store, job_id: uuid.UUID) -> list[str]:
    return [e.event for e in await store.get_events(job_id)]


async def test_enqueue_records_job_and_created_event(store: Store) -> None:
    res = await store.enqueue(NewJob("doubt", {"question": "why?"}, Priority.HIGH))
    job = await store.get_job(res.id)
    assert res.created
    assert job.status is JobStatus.QUEUED
    assert job.priority is Priority.HIGH
    assert job.payload == {"question": "why?"}
    assert job.max_retries == 3
    assert await events_of(store, res.id) == ["created"]


async def test_batch_enqueue_keeps_order_and_dedupes_keys(store: Store) -> None:
    first = await store.enqueue(NewJob("doubt", {"n": 0}, idempotency_key="k0"))
    batch = [
        NewJob("doubt", {"n": 1}),
        NewJob("doubt", {"n": 2}, idempotency_key="k0"),
        NewJob("doubt", {"n": 3}, idempotency_key="k1"),
        NewJob("doubt", {"n": 4}, idempotency_key="k1"),
    ]
    results = await store.enqueue_many(batch)
    assert [r.created for r in results] == [True, False, True, False]
    assert results[1].id == first.id
    assert results[2].id == results[3].id
    assert (await store.get_job(results[0].id)).payload == {"n": 1}
    assert (await store.stats())["total"] == 3


async def test_concurrent_idempotent_submissions_make_one_job(store: Store) -> None:
    results = await asyncio.gather(
        *(store.enqueue(NewJob("doubt", {}, idempotency_key="same")) for _ in range(8))
    )
    assert len({r.id for r in results}) == 1
    assert sum(r.created for r in results) == 1


async def test_max_retries_comes_from_queue_config(store: Store) -> None:
    await store.set_queue_config(QueueConfig("doubt", max_retries=7))
    res = await store.enqueue(NewJob("doubt"))
    explicit = await store.enqueue(NewJob("doubt", max_retries=1))
    assert (await store.get_job(res.id)).max_retries == 7
    assert (await store.get_job(explicit.id)).max_retries == 1


@pytest.mark.parametrize("timeout_s", [float("nan"), float("inf"), 0.0, -1.0])
async def test_a_timeout_a_worker_cannot_use_is_refused_naming_it(
    store: Store, timeout_s: float
) -> None:
    with pytest.raises(InvalidInput, match=r"^timeout_s: "):
        await store.set_queue_config(QueueConfig("doubt", timeout_s=timeout_s))
    assert await store.list_queue_config() == {}
    # The schema refuses it too, whoever writes the row; PostgreSQL orders NaN above
    # every number, so a bare "timeout_s > 0" let it through.
    with pytest.raises(asyncpg.CheckViolationError, match="job_queue_config_timeout_s_check"):
        await store.pool.execute(
            "INSERT INTO vq.job_queue_config (job_type, timeout_s) VALUES ('doubt', $1)", timeout_s
        )
    await store.set_queue_config(QueueConfig("doubt", timeout_s=1e9))
    assert (await store.list_queue_config())["doubt"].timeout_s == 1e9


@pytest.mark.parametrize("payload", ["[1, 2]", '"str"', "null", "7", "true"])
async def test_the_schema_refuses_a_payload_that_is_not_an_object(
    store: Store, payload: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="jobs_payload_check"):
        await store.pool.execute(
            "INSERT INTO vq.jobs (job_type, payload) VALUES ('t', $1::text::jsonb)", payload
        )
    if payload != "null":  # the store reads a missing (null) payload as {}
        with pytest.raises(asyncpg.CheckViolationError, match="jobs_payload_check"):
            await store.enqueue(NewJob("t", json.loads(payload)))
    assert await store.pool.fetchval("SELECT count(*) FROM vq.jobs") == 0


async def test_claim_by_priority_then_age(store: Store) -> None:
    low = await store.enqueue(NewJob("t", {}, Priority.LOW))
    normal1 = await store.enqueue(NewJob("t", {}, Priority.NORMAL))
    normal2 = await store.enqueue(NewJob("t", {}, Priority.NORMAL))
    urgent = await store.enqueue(NewJob("t", {}, Priority.URGENT))
    order = []
    for _ in range(4):
        (job,) = await store.claim("w", {"t": "noop"}, 1, 30)
        order.append(job.id)
    assert order == [urgent.id, normal1.id, normal2.id, low.id]
    assert await store.claim("w", {"t": "noop"}, 1, 30) == []


async def test_claim_respects_types_and_run_at(store: Store) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    await store.enqueue(NewJob("other"))
    await store.enqueue(NewJob("t", run_at=later))
    assert await store.claim("w", {"t": "noop"}, 10, 30) == []
    ready = await store.enqueue(NewJob("t"))
    claimed = await store.claim("w", {"t": "noop"}, 10, 30)
    assert [j.id for j in claimed] == [ready.id]
    job = await store.get_job(ready.id)
    assert job.status is JobStatus.RUNNING and job.worker_id == "w"
    assert job.lease_expires_at is not None and job.started_at is not None
    assert await events_of(store, ready.id) == ["created", "claimed"]


async def test_concurrent_claims_never_share_a_job(store: Store) -> None:
    await store.enqueue_many([NewJob("t", {"i": i}) for i in range(200)])
    batches = await asyncio.gather(*(store.claim(f"w{i}", {"t": "noop"}, 30, 30) for i in range(8)))
    ids = [j.id for batch in batches for j in batch]
    assert len(ids) == len(set(ids)) == 200


async def test_renew_reports_cancel_and_lost_leases(store: Store) -> None:
    a, b = await store.enqueue_many([NewJob("t"), NewJob("t")])
    await store.claim("w", {"t": "noop"}, 2, 30)
    await store.cancel(a.id)
    held = await store.renew_leases("w", [a.id, b.id], 60)
    assert held == {a.id: True, b.id: False}
    assert await store.renew_leases("someone-else", [a.id, b.id], 60) == {}


async def test_complete_writes_result_into_result_and_payload(store: Store) -> None:
    res = await store.enqueue(NewJob("doubt", {"question": "q"}))
    await store.claim("w", {"doubt": "noop"}, 1, 30)
    result = {"video_url": "http://127.0.0.1:1/v.mp4", "thumbnail_url": None, "duration": 3.0}
    assert await store.complete_many("w", [(res.id, result)]) == [res.id]
    job = await store.get_job(res.id)
    assert job.status is JobStatus.COMPLETED and job.completed_at is not None
    assert job.result == result
    assert job.payload == {"question": "q", "video_url": result["video_url"], "duration": 3.0}
    assert await events_of(store, res.id) == ["created", "claimed", "completed"]
    # A second completion changes nothing; another worker's is not its to report done.
    assert await store.complete_many("w2", [(res.id, {})]) == []
    assert (await store.get_job(res.id)).result == result


async def test_a_batch_completion_answers_only_the_jobs_still_held(store: Store) -> None:
    ids = [r.id for r in await store.enqueue_many([NewJob("t") for _ in range(3)])]
    await store.claim("w", {"t": "noop"}, 3, 30)
    await store.complete_many("w", [(ids[1], {"first": True})])
    await store.pool.execute("UPDATE vq.jobs SET worker_id = 'w2' WHERE id = $1", ids[2])
    held = await store.complete_many("w", [(ids[0], {"n": 0}), (ids[1], {}), (ids[2], {"n": 2})])
    # ids[1]: completed by w already, so done; ids[2]: taken by w2 meanwhile, so lost.
    assert held == [ids[0], ids[1]]
    assert [(await store.get_job(i)).result for i in ids] == [{"n": 0}, {"first": True}, None]


async def test_a_retried_completion_reports_done_and_only_anothers_job_lost(
    store: Store,
) -> None:
    """The retry of a batch whose reply was lost (a restart, a cut connection): the
    database holds the completions, so the worker must hear "done", not "lost"."""
    await store.register_worker("w", "host", 1, 4, ["t"], 30.0)
    ids = [r.id for r in await store.enqueue_many([NewJob("t") for _ in range(3)])]
    ids.append((await store.enqueue(NewJob("unclaimed"))).id)
    await store.claim("w", {"t": "noop"}, 3, 30)
    batch = [(i, {"n": n}) for n, i in enumerate(ids[:3])]
    assert await store.complete_many("w", batch[:2]) == ids[:2]
    # ids[2]'s lease ran out before w wrote it: recovered, then claimed by w2.
    await store.pool.execute("UPDATE vq.jobs SET lease_expires_at = now() - interval '1 s'")
    assert [r["id"] for r in await store.recover_expired_leases()] == [ids[2]]
    assert [j.id for j in await store.claim("w2", {"t": "noop"}, 1, 30)] == [ids[2]]
    assert await store.complete_many("w", batch) == ids[:2]
    assert await store.complete_many("w", batch[:2]) == ids[:2]
    # Nothing written twice: one event per completion, the worker counted once each.
    assert [await events_of(store, i) for i in ids[:2]] == [["created", "claimed", "completed"]] * 2
    (info,) = await store.list_workers()
    assert info.jobs_completed == 2
    # Never claimed, never this worker's: lost too.
    assert await store.complete_many("w", [(ids[3], {})]) == []
    assert await store.complete_many("w", [(uuid.uuid4(), {})]) == []


async def test_success_clears_the_error_of_an_earlier_attempt_and_history_keeps_it(
    store: Store,
) -> None:
    res = await store.enqueue(NewJob("t", max_retries=1))
    await store.claim("w", {"t": "noop"}, 1, 30)
    error = {"message": "render server said 503", "type": "API_ERROR", "attempt": 1}
    assert await store.fail("w", res.id, error, 0.0) is JobStatus.QUEUED
    await store.claim("w", {"t": "noop"}, 1, 30)
    assert await store.complete_many("w", [(res.id, {"ok": True})]) == [res.id]
    job = await store.get_job(res.id)
    assert job.status is JobStatus.COMPLETED and job.error is None
    events = await store.get_events(res.id)
    retry = next(e for e in events if e.event == "retry_scheduled")
    assert retry.details is not None and retry.details["message"] == "render server said 503"
    assert retry.details["type"] == "API_ERROR" and retry.details["attempt"] == 1


async def test_fail_retries_then_fails_for_good(store: Store) -> None:
    res = await store.enqueue(NewJob("t", max_retries=1))
    await store.claim("w", {"t": "noop"}, 1, 30)
    status = await store.fail("w", res.id, {"message": "boom", "type": "API_ERROR"}, 0.0)
    assert status is JobStatus.QUEUED
    job = await store.get_job(res.id)
    assert job.retry_count == 1 and job.worker_id is None and job.error["message"] == "boom"
    await store.claim("w", {"t": "noop"}, 1, 30)
    assert await store.fail("w", res.id, {"message": "again"}, None) is JobStatus.FAILED
    job = await store.get_job(res.id)
    assert job.status is JobStatus.FAILED and job.completed_at is not None
    assert await events_of(store, res.id) == [
        "created",
        "claimed",
        "retry_scheduled",
        "claimed",
        "failed",
    ]


async def test_retry_delay_keeps_job_out_of_claims(store: Store) -> None:
    res = await store.enqueue(NewJob("t"))
    await store.claim("w", {"t": "noop"}, 1, 30)
    await store.fail("w", res.id, {"message": "later"}, 3600.0)
    assert await store.claim("w", {"t": "noop"}, 1, 30) == []
    assert (await store.get_job(res.id)).run_at > datetime.now(UTC) + timedelta(minutes=59)


async def test_cancel_queued_is_immediate_and_final(store: Store) -> None:
    res = await store.enqueue(NewJob("t"))
    job = await store.cancel(res.id, actor=Actor("test", "cli"))
    assert job.status is JobStatus.CANCELLED
    assert await store.claim("w", {"t": "noop"}, 1, 30) == []
    with pytest.raises(InvalidTransition, match="cancelled"):
        await store.cancel(res.id)


async def test_cancel_running_asks_the_worker(store: Store) -> None:
    res = await store.enqueue(NewJob("t"))
    await store.claim("w", {"t": "noop"}, 1, 30)
    job = await store.cancel(res.id)
    assert job.status is JobStatus.RUNNING and job.cancel_requested
    assert await store.mark_cancelled("w", res.id)
    job = await store.get_job(res.id)
    assert job.status is JobStatus.CANCELLED
    assert await events_of(store, res.id) == ["created", "claimed", "cancel_requested", "cancelled"]


async def test_retry_only_failed_or_cancelled(store: Store) -> None:
    res = await store.enqueue(NewJob("t"))
    with pytest.raises(InvalidTransition, match="queued"):
        await store.retry(res.id)
    await store.cancel(res.id)
    job = await store.retry(res.id, actor=Actor("test", "cli"))
    assert job.status is JobStatus.QUEUED and job.retry_count == 0 and job.error is None
    with pytest.raises(JobNotFound):
        await store.retry(uuid.uuid4())


async def test_expired_leases_go_back_to_the_queue(store: Store) -> None:
    a, b = await store.enqueue_many([NewJob("t"), NewJob("t")])
    await store.claim("dead", {"t": "noop"}, 2, 30)
    await store.cancel(b.id)
    await store.pool.execute("UPDATE vq.jobs SET lease_expires_at = now() - interval '1 second'")
    recovered = {r["id"]: r for r in await store.recover_expired_leases()}
    assert recovered[a.id]["status"] == "queued" and recovered[a.id]["worker_id"] == "dead"
    assert recovered[b.id]["status"] == "cancelled"
    assert [j.id for j in await store.claim("alive", {"t": "noop"}, 5, 30)] == [a.id]
    # A late completion by the dead worker is refused.
    assert await store.complete_many("dead", [(a.id, {})]) == []


async def test_release_keeps_the_job(store: Store) -> None:
    res = await store.enqueue(NewJob("t"))
    await store.claim("w", {"t": "noop"}, 1, 30)
    assert await store.release("w", [res.id]) == [res.id]
    assert (await store.get_job(res.id)).status is JobStatus.QUEUED
    assert await events_of(store, res.id) == ["created", "claimed", "released"]


async def test_progress_is_stored_with_an_event(store: Store) -> None:
    res = await store.enqueue(NewJob("t"))
    await store.claim("w", {"t": "noop"}, 1, 30)
    assert await store.update_progress("w", res.id, 42.0, "rendering")
    assert (await store.get_job(res.id)).progress == {"percent": 42.0, "stage": "rendering"}
    assert not await store.update_progress("other", res.id, 50.0, "x")


async def test_list_filters_search_and_keyset_pages(store: Store) -> None:
    await store.enqueue_many(
        [
            NewJob("doubt", {"question": f"question {i}"}, Priority.HIGH if i % 2 else Priority.LOW)
            for i in range(25)
        ]
    )
    await store.enqueue(NewJob("other", {"topic": "photosynthesis"}))
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await store.list_jobs(JobFilter(job_type="doubt"), cursor=cursor, limit=10)
        seen += [j.id for j in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 25
    high = await store.list_jobs(JobFilter(priority=Priority.HIGH), limit=100)
    assert len(high.jobs) == 12 and all(j.priority is Priority.HIGH for j in high.jobs)
    found = await store.list_jobs(JobFilter(text="PHOTO"))
    assert [j.job_type for j in found.jobs] == ["other"]
    by_id = await store.list_jobs(JobFilter(text=str(found.jobs[0].id)))
    assert [j.id for j in by_id.jobs] == [found.jobs[0].id]
    other_type = await store.list_jobs(JobFilter(job_type="doubt", text=str(found.jobs[0].id)))
    assert other_type.jobs == []
    assert (await store.list_jobs(JobFilter(text=str(uuid.uuid4())))).jobs == []
    asc = await store.list_jobs(sort="priority", limit=100)
    assert [j.priority for j in asc.jobs] == sorted(j.priority for j in asc.jobs)


async def test_list_newest_first_is_submission_order_reversed(store: Store) -> None:
    # Creation order is id order (time-ordered ids), with or without idempotency keys.
    ids = []
    for i in range(12):
        key = f"k{i}" if i % 3 == 0 else None
        ids.append((await store.enqueue(NewJob("t", {"i": i}, idempotency_key=key))).id)
    newest: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await store.list_jobs(sort="-created_at", cursor=cursor, limit=5)
        newest += [j.id for j in page.jobs]
        if (cursor := page.next_cursor) is None:
            break
    assert newest == ids[::-1]
    oldest = await store.list_jobs(JobFilter(job_type="t"), sort="created_at", limit=100)
    assert [j.id for j in oldest.jobs] == ids
    by_priority = await store.list_jobs(sort="priority", limit=1)
    with pytest.raises(InvalidInput, match="cursor"):
        await store.list_jobs(sort="-created_at", cursor=by_priority.next_cursor)


async def test_list_rejects_bad_sort_limit_and_cursor(store: Store) -> None:
    with pytest.raises(InvalidInput, match="sort"):
        await store.list_jobs(sort="payload")
    with pytest.raises(InvalidInput, match="limit"):
        await store.list_jobs(limit=0)
    with pytest.raises(InvalidInput, match="cursor"):
        await store.list_jobs(cursor="not-a-cursor")


async def test_stats_add_up(store: Store) -> None:
    ids = [r.id for r in await store.enqueue_many([NewJob("t") for _ in range(5)])]
    claimed = await store.claim("w", {"t": "noop"}, 3, 30)
    await store.complete_many("w", [(claimed[0].id, {})])
    await store.fail("w", claimed[1].id, {"message": "x"}, None)
    await store.cancel(ids[4])
    stats = await store.stats()
    assert stats["by_status"] == {
        "queued": 1,
        "running": 1,
        "completed": 1,
        "failed": 1,
        "cancelled": 1,
    }
    assert stats["total"] == 5 and stats["depth"] == 1
    assert stats["throughput"]["1m"]["success_rate"] == 0.5
    assert stats["by_type"]["t"]["completed"] == 1
    assert stats["oldest_queued_age_s"] >= 0


async def test_prune_deletes_old_finished_jobs_and_history(store: Store) -> None:
    old, fresh, queued = await store.enqueue_many([NewJob("t"), NewJob("t"), NewJob("t")])
    await store.cancel(old.id)
    await store.cancel(fresh.id)
    await store.pool.execute(
        "UPDATE vq.jobs SET completed_at = now() - interval '40 days' WHERE id = $1", old.id
    )
    assert await store.prune(30 * 86400) == 1
    with pytest.raises(JobNotFound):
        await store.get_job(old.id)
    assert await store.get_events(old.id) == []
    assert (await store.get_job(fresh.id)).status is JobStatus.CANCELLED
    assert (await store.get_job(queued.id)).status is JobStatus.QUEUED


async def test_workers_register_heartbeat_and_go_stale(store: Store) -> None:
    await store.register_worker("w1", "host", 1, 4, ["t"], 2.0)
    (info,) = await store.list_workers()
    assert info.id == "w1" and not info.stale
    await store.pool.execute("UPDATE vq.workers SET last_heartbeat = now() - interval '10 seconds'")
    (info,) = await store.list_workers()
    assert info.stale
    assert await store.heartbeat("w1", 3)
    (info,) = await store.list_workers()
    assert not info.stale and info.jobs_in_flight == 3
    await store.deregister_worker("w1")
    assert await store.list_workers() == []
    assert not await store.heartbeat("w1", 0)


async def test_worker_failure_counters(store: Store) -> None:
    await store.register_worker("w1", "host", 1, 4, ["t"], 30.0)
    ids = [r.id for r in await store.enqueue_many([NewJob("t") for _ in range(4)])]
    await store.claim("w1", {"t": "noop"}, 4, 30)
    for job_id in ids[:3]:
        await store.fail("w1", job_id, {"message": "x"}, None)
    (info,) = await store.list_workers()
    assert info.consecutive_failures == 3 and info.jobs_failed == 3
    await store.complete_many("w1", [(ids[3], {})])
    (info,) = await store.list_workers()
    assert info.consecutive_failures == 0 and info.jobs_completed == 1


async def test_unkeyed_batch_answers_in_input_order(store: Store) -> None:
    later = datetime.now(UTC) + timedelta(minutes=5)
    jobs = [
        NewJob(
            "doubt",
            {"n": i},
            Priority(i % 4),
            run_at=later if i == 3 else None,
            max_retries=9 if i == 4 else None,
        )
        for i in range(50)
    ]
    results = await store.enqueue_many(jobs)
    assert all(r.created for r in results)
    for i, r in enumerate(results):
        job = await store.get_job(r.id)
        assert job.payload == {"n": i} and job.priority is Priority(i % 4)
    assert (await store.get_job(results[3].id)).run_at == later
    assert (await store.get_job(results[4].id)).max_retries == 9
    assert (await store.get_job(results[5].id)).max_retries == 3
    assert len(await store.get_events(results[0].id)) == 1
