"""The job list's sort by priority and filter by type (migration 0018): walked
through vq.job_search's copies of each job's priority and type, kept by the insert
trigger of 0017 and by an update trigger."""

from __future__ import annotations

import uuid

import pytest

from vq_core import db
from vq_core.db import migrations
from vq_core.models import Actor, Job, JobFilter, JobStatus, NewJob, Priority
from vq_core.store import Store, listing

ACTOR = Actor("test", "cli")


async def listed(store: Store, sort: str, limit: int = 3, **filters: object) -> list[Job]:
    """Every job of the list in ``sort`` order, read page by page."""
    jobs: list[Job] = []
    cursor = None
    while True:
        page = await store.list_jobs(
            JobFilter(**filters),  # type: ignore[arg-type]
            sort=sort,
            cursor=cursor,
            limit=limit,
        )
        jobs += page.jobs
        if (cursor := page.next_cursor) is None:
            return jobs


def in_order(jobs: list[Job], descending: bool = False) -> list[uuid.UUID]:
    ordered = sorted(jobs, key=lambda j: (int(j.priority), j.id), reverse=descending)
    return [j.id for j in ordered]


async def every_job(store: Store) -> list[Job]:
    return await listed(store, "-created_at", limit=500)


@pytest.fixture
async def mixed(store: Store) -> Store:
    """Jobs of every priority, through every way in, with a few moved on."""
    levels = list(Priority)
    for i in range(5):
        await store.enqueue(NewJob("doubt", {"i": i}, levels[i % 4]))
    await store.enqueue_many(
        [NewJob("diagram", {"i": i}, levels[(i * 3) % 4]) for i in range(9)]
        + [NewJob("doubt", {"i": 100}, Priority.URGENT, idempotency_key="k-100")]
    )
    for level in ("low", "urgent", "normal"):
        await store.pool.execute("SELECT vq.enqueue('compose', '{}', $1)", level)
    queued = await store.list_jobs(JobFilter(job_type="diagram"), limit=3)
    await store.cancel(queued.jobs[0].id, ACTOR)
    return store


@pytest.mark.parametrize("sort", ["priority", "-priority"])
async def test_pages_by_priority_list_every_job_once_in_order(mixed: Store, sort: str) -> None:
    everything = await every_job(mixed)
    assert len(everything) == 18
    jobs = await listed(mixed, sort)
    assert [j.id for j in jobs] == in_order(everything, descending=sort.startswith("-"))


@pytest.mark.parametrize(
    "filters",
    [
        {"job_type": "diagram"},
        {"status": JobStatus.QUEUED},
        {"status": JobStatus.CANCELLED},
        {"priority": Priority.URGENT},
        {"job_type": "doubt", "status": JobStatus.QUEUED},
    ],
)
async def test_filters_apply_to_the_priority_order(
    mixed: Store, filters: dict[str, object]
) -> None:
    everything = await every_job(mixed)
    expected = [
        j
        for j in everything
        if all(getattr(j, k) == v or getattr(j, k) is v for k, v in filters.items())
    ]
    assert expected, "the fixture has jobs of every filter"
    for sort in ("priority", "-priority"):
        jobs = await listed(mixed, sort, limit=2, **filters)
        assert [j.id for j in jobs] == in_order(expected, descending=sort == "-priority")


async def test_a_priority_changed_in_sql_moves_the_job(mixed: Store) -> None:
    last = (await listed(mixed, "priority"))[-1]
    assert last.priority is Priority.LOW
    await mixed.pool.execute("UPDATE vq.jobs SET priority = 0 WHERE id = $1", last.id)
    jobs = await listed(mixed, "priority")
    assert jobs[0].priority is Priority.URGENT
    assert [j.id for j in jobs] == in_order(await every_job(mixed))
    assert last.id in {j.id for j in jobs if j.priority is Priority.URGENT}


async def test_every_job_has_its_priority_and_type_copied(mixed: Store) -> None:
    unmatched = await mixed.pool.fetchval(
        "SELECT count(*) FROM vq.jobs j LEFT JOIN vq.job_search s ON s.job_id = j.id"
        " WHERE s.job_priority IS DISTINCT FROM j.priority"
        " OR s.job_type IS DISTINCT FROM j.job_type"
    )
    assert unmatched == 0


@pytest.mark.parametrize("sort", ["-created_at", "created_at", "-updated_at", "priority"])
@pytest.mark.parametrize("job_type", ["doubt", "diagram", "compose", "absent"])
async def test_a_type_filter_lists_that_type_once_in_order(
    mixed: Store, sort: str, job_type: str
) -> None:
    everything = await every_job(mixed)
    jobs = await listed(mixed, sort, limit=2, job_type=job_type)
    assert {j.id for j in jobs} == {j.id for j in everything if j.job_type == job_type}
    assert len(jobs) == len({j.id for j in jobs})
    if sort == "-created_at":
        assert [j.id for j in jobs] == sorted((j.id for j in jobs), reverse=True)
    if sort == "created_at":
        assert [j.id for j in jobs] == sorted(j.id for j in jobs)
    if sort == "priority":
        assert [j.id for j in jobs] == in_order(jobs)


@pytest.mark.parametrize(("search_ids", "window"), [(0, 0), (0, 3), (listing.SEARCH_IDS, 3)])
async def test_a_type_filter_with_words_finds_the_same_jobs_whichever_way(
    store: Store, monkeypatch: pytest.MonkeyPatch, search_ids: int, window: int
) -> None:
    """Each of the search's ways (the window, the word index's ids, the walk, which with
    a type goes through list_jobs_of_type) finds the same jobs."""
    monkeypatch.setattr(listing, "SEARCH_IDS", search_ids)
    monkeypatch.setattr(listing, "SEARCH_WINDOW", window)
    monkeypatch.setattr(listing, "WORDS_WINDOW", window)
    await store.enqueue_many(
        [NewJob("doubt", {"question": f"orbit {i}"}) for i in range(4)]
        + [NewJob("diagram", {"question": f"orbit {i}"}) for i in range(3)]
        + [NewJob("diagram", {"question": "other"})]
    )
    for sort in ("-created_at", "priority", "-updated_at"):
        jobs = await listed(store, sort, limit=2, job_type="diagram", text="orb")
        assert sorted(j.payload["question"] for j in jobs) == ["orbit 0", "orbit 1", "orbit 2"]
        assert {j.job_type for j in jobs} == {"diagram"}


async def test_a_type_changed_in_sql_moves_the_job(mixed: Store) -> None:
    compose = await listed(mixed, "-created_at", job_type="compose")
    moved = compose[0].id
    await mixed.pool.execute("UPDATE vq.jobs SET job_type = 'diagram' WHERE id = $1", moved)
    assert moved not in {j.id for j in await listed(mixed, "-created_at", job_type="compose")}
    assert moved in {j.id for j in await listed(mixed, "-created_at", job_type="diagram")}


async def test_the_migrations_copy_the_priorities_and_types_already_there(empty_dsn: str) -> None:
    conn = await db.connect(empty_dsn)
    try:
        await migrations.migrate(conn, up_to=17)
        await conn.execute(
            "INSERT INTO vq.jobs (job_type, priority, status, completed_at) VALUES"
            " ('doubt', 3, 'completed', now()), ('doubt', 0, 'queued', NULL),"
            " ('diagram', 2, 'queued', NULL)"
        )
        assert next(m.version for m in await migrations.migrate(conn)) == 18
    finally:
        await conn.close()
    pool = await db.create_pool(empty_dsn, min_size=1, max_size=2)
    try:
        store = Store(pool)
        jobs = await listed(store, "priority")
        assert [j.priority for j in jobs] == [Priority.URGENT, Priority.NORMAL, Priority.LOW]
        assert [j.job_type for j in await listed(store, "-created_at", job_type="diagram")] == [
            "diagram"
        ]
        assert len(await listed(store, "created_at", job_type="doubt")) == 2
    finally:
        await pool.close()
