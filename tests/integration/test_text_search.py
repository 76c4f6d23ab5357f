"""The job list's free-text search (migration 0017): words and word prefixes of the type,
question and topic, through the side table ``vq.job_search`` its triggers keep."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from vq_core import db
from vq_core.db import migrations
from vq_core.models import Actor, JobFilter, JobStatus, NewJob
from vq_core.store import Store, listing

ACTOR = Actor("test", "cli")


async def texts_found(store: Store, text: str, **filters: object) -> set[str]:
    """The questions of every job the list finds for ``text``, all pages read."""
    found: list[str] = []
    cursor = None
    while True:
        page = await store.list_jobs(
            JobFilter(text=text, **filters),  # type: ignore[arg-type]
            cursor=cursor,
            limit=2,
        )
        found += [str(j.payload.get("question", j.job_type)) for j in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(found) == len(set(found)), "a job listed twice across pages"
    return set(found)


async def search_rows(store: Store) -> int:
    count: int = await store.pool.fetchval("SELECT count(*) FROM vq.job_search")
    return count


@pytest.fixture
async def questions(store: Store) -> Store:
    await store.enqueue_many(
        [
            NewJob("doubt", {"question": "How does gravity work?", "topic": "physics"}),
            NewJob("doubt", {"question": "Why is the sky blue?", "topic": "optics"}),
            NewJob("diagram", {"question": "Draw the gravitational field"}),
            NewJob("doubt", {"question": "It's O'Brien's \"quoted\" question: a & b | !c"}),
            NewJob("compose", {"topic": "photosynthesis"}),
        ]
    )
    return store


async def test_a_word_prefix_matches_whole_words_case_insensitively(questions: Store) -> None:
    assert await texts_found(questions, "grav") == {
        "How does gravity work?",
        "Draw the gravitational field",
    }
    assert await texts_found(questions, "GRAVITY") == {"How does gravity work?"}
    assert await texts_found(questions, "PHOTO") == {"compose"}  # the topic
    assert await texts_found(questions, "diag") == {"Draw the gravitational field"}  # type
    # Words, not substrings: the middle of a word does not match.
    assert await texts_found(questions, "ravity") == set()


async def test_every_word_must_match(questions: Store) -> None:
    assert await texts_found(questions, "grav work") == {"How does gravity work?"}
    assert await texts_found(questions, "work grav") == {"How does gravity work?"}
    assert await texts_found(questions, "gravity blue") == set()
    assert await texts_found(questions, "sky optics") == {"Why is the sky blue?"}


@pytest.mark.parametrize(
    "text",
    ["'", "''", '"', "\\", "&", "|", "!", "(", ")", ":", "*", ":*", "&|!():*", "a:*b", "()", "'a'"],
)
async def test_tsquery_syntax_in_the_text_never_raises(questions: Store, text: str) -> None:
    page = await questions.list_jobs(JobFilter(text=text))
    count = await questions.count_actionable(JobFilter(text=text), "cancel")
    assert count == len(page.jobs) <= 5


async def test_punctuation_around_words_is_ignored(questions: Store) -> None:
    quoted = "It's O'Brien's \"quoted\" question: a & b | !c"
    assert await texts_found(questions, "o'brien's") == {quoted}
    assert await texts_found(questions, '"quoted" (question) & !c:*') == {quoted}
    assert await texts_found(questions, "(gravity)!") == {"How does gravity work?"}
    # Nothing but punctuation: no words, so no job matches.
    assert await texts_found(questions, "&|!") == set()


async def test_blank_text_is_no_filter(questions: Store) -> None:
    assert len((await questions.list_jobs(JobFilter(text="   "))).jobs) == 5


async def test_no_match_lists_and_counts_nothing(questions: Store) -> None:
    assert await texts_found(questions, "zebra") == set()
    assert await questions.count_actionable(JobFilter(text="zebra"), "cancel") == 0


async def test_a_job_enqueued_through_each_path_is_findable(store: Store, dsn: str) -> None:
    await store.enqueue(NewJob("doubt", {"question": "single alpha"}))
    await store.enqueue_many([NewJob("doubt", {"question": "batch bravo"})])
    await store.enqueue_many(
        [NewJob("doubt", {"question": "keyed charlie"}, idempotency_key="k-charlie")]
    )
    await store.pool.execute("SELECT vq.enqueue('doubt', '{\"question\": \"sql delta\"}')")
    conn = await asyncpg.connect(dsn)
    try:  # the first version's table, as vq import reads it (tests/integration/test_import.py)
        await conn.execute(
            "CREATE TABLE public.jobs (id serial PRIMARY KEY, job_type varchar(50) NOT NULL,"
            " priority varchar(10) NOT NULL DEFAULT 'normal',"
            " status varchar(20) NOT NULL DEFAULT 'pending',"
            " payload jsonb NOT NULL DEFAULT '{}', result jsonb, video_url text,"
            " retry_count integer NOT NULL DEFAULT 0, max_retries integer NOT NULL DEFAULT 3,"
            " error_message text, created_at timestamptz NOT NULL DEFAULT now(),"
            " updated_at timestamptz NOT NULL DEFAULT now(), completed_at timestamptz)"
        )
        await conn.execute(
            "INSERT INTO public.jobs (job_type, status, payload, completed_at) VALUES"
            " ('doubt', 'completed', '{\"question\": \"imported echo\"}', now()),"
            " ('doubt', 'pending', '{\"question\": \"imported foxtrot\"}', NULL)"
        )
    finally:
        await conn.close()
    report = await store.import_first_version("public.jobs", ACTOR)
    assert sum(report.imported.values()) == 2
    for word, question in [
        ("alph", "single alpha"),
        ("brav", "batch bravo"),
        ("charl", "keyed charlie"),
        ("delt", "sql delta"),
        ("ech", "imported echo"),
        ("foxt", "imported foxtrot"),
    ]:
        assert await texts_found(store, word) == {question}
    assert await search_rows(store) == await store.pool.fetchval("SELECT count(*) FROM vq.jobs")


@pytest.mark.parametrize(
    ("search_ids", "window"),
    [(2, 3), (2, listing.SEARCH_WINDOW), (listing.SEARCH_IDS, 3), (listing.SEARCH_IDS, 100)],
)
async def test_the_list_count_and_bulk_actions_agree(
    store: Store, monkeypatch: pytest.MonkeyPatch, search_ids: int, window: int
) -> None:
    """Every way of the list (the window of the next jobs; few matches: sorted from the
    ids; many: the ordered walk) finds what count_jobs counts and the bulk action acts on."""
    monkeypatch.setattr(listing, "SEARCH_IDS", search_ids)
    monkeypatch.setattr(listing, "SEARCH_WINDOW", window)
    monkeypatch.setattr(listing, "WORDS_WINDOW", window)
    enqueued = await store.enqueue_many(
        [NewJob("doubt", {"question": f"orbit number {i}"}) for i in range(7)]
        + [NewJob("doubt", {"question": f"other number {i}"}) for i in range(5)]
    )
    await store.cancel(enqueued[0].id, ACTOR)
    await store.cancel(enqueued[8].id, ACTOR)
    for sort in ("-created_at", "created_at", "-updated_at", "priority"):
        page = await store.list_jobs(JobFilter(text="orb"), sort=sort, limit=100)
        assert {j.id for j in page.jobs} == {e.id for e in enqueued[:7]}, sort
    queued = await texts_found(store, "orb num", status=JobStatus.QUEUED)
    assert queued == {f"orbit number {i}" for i in range(1, 7)}
    assert await store.count_actionable(JobFilter(text="orb num"), "cancel") == 6
    assert await store.count_actionable(JobFilter(text="orb num"), "retry") == 1
    result = await store.bulk_cancel(JobFilter(text="orb num"), ACTOR)
    assert result.acted == 6
    assert await texts_found(store, "orb", status=JobStatus.CANCELLED) == {
        f"orbit number {i}" for i in range(7)
    }
    assert await texts_found(store, "other", status=JobStatus.QUEUED) == {
        f"other number {i}" for i in range(5) if i != 1
    }


async def test_deleted_jobs_leave_the_search(store: Store) -> None:
    done = await store.enqueue_many([NewJob("noop", {"question": f"old {i}"}) for i in range(3)])
    kept = await store.enqueue(NewJob("kept", {"question": "young"}))  # not claimed
    claimed = await store.claim("w", {"noop": "noop"}, 3, 30)
    assert {j.id for j in claimed} == {e.id for e in done}
    assert len(await store.complete_many("w", [(e.id, {}) for e in done])) == 3
    # Finished a day ago, so that the prune takes them (the young one is still queued).
    await store.pool.execute(
        "UPDATE vq.jobs SET completed_at = now() - interval '1 day' WHERE id = ANY($1::uuid[])",
        [e.id for e in done],
    )
    assert await search_rows(store) == 4
    assert await store.prune(3600) == 3
    assert await search_rows(store) == 1
    assert await texts_found(store, "old") == set()
    assert await texts_found(store, "young") == {"young"}
    await store.pool.execute("DELETE FROM vq.jobs WHERE id = $1", kept.id)
    assert await search_rows(store) == 0
    await store.enqueue(NewJob("noop", {"question": "truncated"}))
    await store.pool.execute("TRUNCATE vq.jobs CASCADE")
    assert await search_rows(store) == 0


async def test_a_rolled_back_enqueue_leaves_no_search_row(store: Store) -> None:
    async with store.pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await conn.execute("SELECT vq.enqueue('doubt', '{\"question\": \"ghost\"}')")
                assert await conn.fetchval("SELECT count(*) FROM vq.job_search") == 1
                raise RuntimeError("roll back")
    assert await search_rows(store) == 0


async def test_a_huge_question_still_enqueues(store: Store) -> None:
    # Two million characters of distinct words would exceed tsvector's 1 MB limit; the
    # document is capped instead, so the job is accepted and its first words found.
    words = " ".join(f"w{i}" for i in range(300_000))
    await store.enqueue(NewJob("doubt", {"question": "needle " + words}))
    assert await texts_found(store, "needle") == {"needle " + words}


async def test_the_migration_indexes_the_jobs_already_there(empty_dsn: str) -> None:
    conn = await db.connect(empty_dsn)
    try:
        await migrations.migrate(conn, up_to=16)
        await conn.execute(
            "INSERT INTO vq.jobs (job_type, payload, status, completed_at) VALUES"
            " ('doubt', '{\"question\": \"before the upgrade\"}', 'completed', now()),"
            " ('diagram', '{\"topic\": \"tides\"}', 'queued', NULL)"
        )
        assert next(m.version for m in await migrations.migrate(conn)) == 17
        assert await conn.fetchval("SELECT count(*) FROM vq.job_search") == 2
    finally:
        await conn.close()
    pool = await db.create_pool(empty_dsn, min_size=1, max_size=2)
    try:
        store = Store(pool)
        assert await texts_found(store, "upgr") == {"before the upgrade"}
        assert await texts_found(store, "tide") == {"diagram"}
        assert (await store.list_jobs(JobFilter(text=str(uuid.uuid4())))).jobs == []
    finally:
        await pool.close()


@pytest.mark.parametrize("window", [0, 4, 1000])
@pytest.mark.parametrize("sort", ["-created_at", "created_at"])
async def test_words_behind_a_burst_of_other_jobs_are_found_in_order(
    store: Store, monkeypatch: pytest.MonkeyPatch, window: int, sort: str
) -> None:
    """The words' window walks vq.job_search in key order: older matches behind a burst
    of newer jobs without the words come in creation order, page after page, each once."""
    monkeypatch.setattr(listing, "WORDS_WINDOW", window)
    monkeypatch.setattr(listing, "SEARCH_IDS", 2)  # past the word index: the walk
    older = await store.enqueue_many([NewJob("doubt", {"question": f"tide {i}"}) for i in range(7)])
    await store.enqueue_many([NewJob("noop") for _ in range(30)])
    newest_first = sort.startswith("-")
    ids: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await store.list_jobs(JobFilter(text="tide"), sort=sort, cursor=cursor, limit=3)
        ids += [j.id for j in page.jobs]
        if (cursor := page.next_cursor) is None:
            break
    expected = [e.id for e in older]
    assert ids == (expected[::-1] if newest_first else expected)
