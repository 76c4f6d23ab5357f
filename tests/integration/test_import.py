"""``vq import`` on real PostgreSQL: a first-version ``jobs`` table moved into vq, once.

The first version's table here is the one docs/platform.md describes ("Importing the
first version's jobs"): ``id``, ``job_type``, ``priority`` by name, ``status``,
``payload``, ``result``, ``video_url``, ``retry_count``, ``max_retries``,
``error_message`` and its times.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from click.testing import CliRunner, Result

from vq_core import db
from vq_core.cli.main import cli
from vq_core.store import Store

T = TypeVar("T")

FIRST_VERSION_TABLE = """
CREATE TABLE {name} (
    id serial PRIMARY KEY,
    job_type varchar(50) NOT NULL,
    priority varchar(10) NOT NULL DEFAULT 'normal',
    status varchar(20) NOT NULL DEFAULT 'pending',
    payload jsonb NOT NULL DEFAULT '{{}}',
    result jsonb,
    video_url text,
    retry_count integer NOT NULL DEFAULT 0,
    max_retries integer NOT NULL DEFAULT 3,
    error_message text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
)
"""

# Row i of the big table has status STATUSES[i % 10] and priority PRIORITIES[i % 4]:
# every status of the first version, in the spellings and cases it may hold.
STATUSES = (
    "pending",
    "queued",
    "retrying",
    "processing",
    "running",
    "completed",
    "failed",
    "cancelled",
    "canceled",
    "Completed",
)
PRIORITIES = ("urgent", "HIGH", "normal", "Low")
ROWS = 10_000
EXPECTED = {"queued": 5000, "completed": 2000, "failed": 1000, "cancelled": 2000}
NONE = {"queued": 0, "completed": 0, "failed": 0, "cancelled": 0}

FILL = """
INSERT INTO public.jobs (job_type, priority, status, payload, result, video_url,
                         retry_count, max_retries, error_message, created_at, updated_at,
                         completed_at)
SELECT 'doubt',
       ($1::text[])[1 + i % 4],
       ($2::text[])[1 + i % 10],
       jsonb_build_object('question', 'question ' || i),
       -- completed: half with a result, half with the video_url column only
       CASE WHEN i % 10 IN (5, 9) AND i % 20 < 10
            THEN jsonb_build_object('video_url', 'http://127.0.0.1:9/v' || i || '.mp4',
                                    'thumbnail_url', 'http://127.0.0.1:9/t' || i || '.png',
                                    'duration', 42) END,
       CASE WHEN i % 10 IN (5, 9) AND i % 20 >= 10
            THEN 'http://127.0.0.1:9/only' || i || '.mp4' END,
       CASE WHEN i % 10 = 6 THEN 3 WHEN i % 10 = 3 THEN 1 ELSE 0 END,
       3,
       -- failed: an error message, except one in two (i % 20 = 16) that has none
       CASE WHEN i % 20 = 6 THEN 'render exploded ' || i END,
       now() - make_interval(mins => 20000 - i),
       now() - make_interval(mins => 10000 - i),
       CASE WHEN i % 10 IN (5, 6, 7, 8, 9) THEN now() - make_interval(mins => 10000 - i) END
  FROM generate_series(1, $3::integer) i
"""


@pytest.fixture
def runner(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("VQ_DATABASE_URL", dsn)
    monkeypatch.setenv("VQ_DATA_DIR", str(tmp_path))
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(cli, list(args), catch_exceptions=False)


def import_json(runner: CliRunner, *args: str, code: int = 0) -> dict[str, Any]:
    result = invoke(runner, "import", *args, "--json")
    assert result.exit_code == code, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def assert_usage_error(result: Result, *words: str) -> None:
    """Exit 2, one ``Error:`` line naming the problem, nothing on stdout."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --table: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert result.stdout == ""


def in_db(dsn: str, fn: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``fn`` with a store over the test's database (the CLI opens its own)."""

    async def body() -> T:
        store = Store(await db.create_pool(dsn, min_size=1, max_size=4))
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(body())


def sql(dsn: str, statement: str, *args: Any) -> list[asyncpg.Record]:
    async def run(store: Store) -> list[asyncpg.Record]:
        return list(await store.pool.fetch(statement, *args))

    return in_db(dsn, run)


def first_version_table(dsn: str, rows: int, name: str = "public.jobs") -> None:
    sql(dsn, FIRST_VERSION_TABLE.format(name=name))
    if rows:
        sql(dsn, FILL.replace("public.jobs", name), list(PRIORITIES), list(STATUSES), rows)


def job_of(dsn: str, old_id: int, table: str = "public.jobs") -> asyncpg.Record:
    [row] = sql(dsn, "SELECT * FROM vq.jobs WHERE idempotency_key = $1", f"import:{table}:{old_id}")
    return row


# -- the big table, twice -------------------------------------------------------------


def test_ten_thousand_rows_of_every_status_import_once(runner: CliRunner, dsn: str) -> None:
    first_version_table(dsn, ROWS)

    first = import_json(runner, "--table", "public.jobs")
    assert first == {
        "table": "public.jobs",
        "dry_run": False,
        "rows": ROWS,
        "imported": EXPECTED,
        "already_imported": NONE,
        "refused": [],
    }
    second = import_json(runner, "--table", "public.jobs")
    assert second["rows"] == ROWS
    assert second["imported"] == NONE and second["already_imported"] == EXPECTED
    assert second["refused"] == []

    [counts] = sql(
        dsn,
        "SELECT count(*) AS jobs, count(DISTINCT idempotency_key) AS keys,"
        " (SELECT count(*) FROM vq.job_events WHERE event = 'created') AS created,"
        " (SELECT count(*) FROM vq.job_events) AS events FROM vq.jobs",
    )
    assert dict(counts) == {"jobs": ROWS, "keys": ROWS, "created": ROWS, "events": ROWS}
    by_status = {
        r[0]: r[1] for r in sql(dsn, "SELECT status::text, count(*) FROM vq.jobs GROUP BY 1")
    }
    assert by_status == EXPECTED
    by_priority = {
        r[0]: r[1] for r in sql(dsn, "SELECT priority, count(*) FROM vq.jobs GROUP BY 1")
    }
    assert by_priority == {0: 2500, 1: 2500, 2: 2500, 3: 2500}
    # Every first-version id is there once, in the key and in the history.
    ids = sql(
        dsn,
        "SELECT (e.details ->> 'first_version_id')::int AS old, j.idempotency_key AS key"
        "  FROM vq.job_events e JOIN vq.jobs j ON j.id = e.job_id",
    )
    assert sorted(r["old"] for r in ids) == list(range(1, ROWS + 1))
    assert all(r["key"] == f"import:public.jobs:{r['old']}" for r in ids)


def test_imported_jobs_keep_their_outcome_and_the_waiting_ones_are_claimed(
    runner: CliRunner, dsn: str
) -> None:
    first_version_table(dsn, 40)
    assert import_json(runner, "--table", "public.jobs")["refused"] == []

    with_result = job_of(dsn, 5)  # completed, with a result
    assert with_result["status"] == "completed"
    assert with_result["result"] == {
        "video_url": "http://127.0.0.1:9/v5.mp4",
        "thumbnail_url": "http://127.0.0.1:9/t5.png",
        "duration": 42,
    }
    assert with_result["payload"]["video_url"] == "http://127.0.0.1:9/v5.mp4"
    assert with_result["error"] is None and with_result["completed_at"] is not None
    video_only = job_of(dsn, 19)  # "Completed", the video_url column only
    assert video_only["status"] == "completed"
    assert video_only["result"] == {"video_url": "http://127.0.0.1:9/only19.mp4"}

    failed = job_of(dsn, 6)
    assert failed["status"] == "failed" and failed["retry_count"] == 3
    assert failed["error"] == {"message": "render exploded 6", "type": "UNKNOWN"}
    silent = job_of(dsn, 16)  # failed without an error_message: still says it failed
    assert silent["error"]["message"].startswith("failed in the first version")
    old = sql(dsn, "SELECT completed_at FROM public.jobs WHERE id = 6")[0]["completed_at"]
    assert failed["completed_at"] == old

    for old_id in (7, 8):
        assert job_of(dsn, old_id)["status"] == "cancelled"

    processing = job_of(dsn, 3)  # its first-version worker is gone: queued again
    assert processing["status"] == "queued" and processing["worker_id"] is None
    assert processing["retry_count"] == 1 and processing["started_at"] is None
    queued_keys = {
        r["idempotency_key"] for r in sql(dsn, "SELECT * FROM vq.jobs WHERE status = 'queued'")
    }
    assert {int(k.rsplit(":", 1)[1]) % 10 for k in queued_keys} == {0, 1, 2, 3, 4}

    def claim(limit: int) -> set[str]:
        async def run(store: Store) -> set[str]:
            claimed = await store.claim("w-import", {"doubt": "noop"}, limit, 60)
            return {str(job.id) for job in claimed}

        return in_db(dsn, run)

    def ids(where: str) -> set[str]:
        return {r["id"] for r in sql(dsn, f"SELECT id::text FROM vq.jobs WHERE {where}")}

    # Highest priority first: the urgent ones (i % 4 == 0: 4, 12, 20, 24, 32, 40) go first.
    urgent = ids("status = 'queued' AND priority = 0")
    assert len(urgent) == 6
    assert claim(6) == urgent
    rest = ids("status = 'queued'")
    assert len(rest) == 14 and claim(100) == rest
    running = sql(dsn, "SELECT idempotency_key FROM vq.jobs WHERE status = 'running'")
    assert {r["idempotency_key"] for r in running} == queued_keys


def test_a_dry_run_counts_and_changes_nothing(runner: CliRunner, dsn: str) -> None:
    first_version_table(dsn, 200)
    dry = import_json(runner, "--table", "public.jobs", "--dry-run")
    assert dry["dry_run"] is True and dry["rows"] == 200
    [empty] = sql(
        dsn, "SELECT (SELECT count(*) FROM vq.jobs) + (SELECT count(*) FROM vq.job_events) AS n"
    )
    assert empty["n"] == 0

    real = import_json(runner, "--table", "public.jobs")
    assert (
        real["imported"]
        == dry["imported"]
        == {
            "queued": 100,
            "completed": 40,
            "failed": 20,
            "cancelled": 40,
        }
    )
    sql(
        dsn,
        "INSERT INTO public.jobs (job_type, priority, status) VALUES ('doubt', 'low', 'pending')",
    )
    again = import_json(runner, "--table", "public.jobs", "--dry-run")
    assert again["already_imported"] == real["imported"]
    assert again["imported"] == {"queued": 1, "completed": 0, "failed": 0, "cancelled": 0}
    assert len(sql(dsn, "SELECT 1 FROM vq.jobs")) == 200

    human = invoke(runner, "import", "--table", "public.jobs", "--dry-run")
    assert human.exit_code == 0, human.output
    assert "dry run: nothing changed" in human.stdout
    assert human.stdout.splitlines()[2].split() == ["queued", "1", "100"]


# -- rows that cannot be imported ------------------------------------------------------

# A first version that kept everything as text (and no optional columns): every value a
# row can get wrong, each refused with its reason while the good rows go in.
TEXT_TABLE = """
CREATE TABLE legacy.jobs (
    id bigint PRIMARY KEY, job_type text, priority text, status text, payload text,
    retry_count text, max_retries text, error_message text
)
"""
BAD_ROWS: list[tuple[Any, ...]] = [
    (1, "doubt", "normal", "pending", '{"question": "fine"}', "0", "3", None, None),
    (2, "doubt", "normal", "pending", "not json", "0", "3", None, "payload: not valid JSON"),
    (3, "doubt", "normal", "pending", "[1, 2]", "0", "3", None, "payload: Input should be"),
    (4, "doubt", "normal", "exploded", "{}", "0", "3", None, "status: 'exploded' is not"),
    (5, "doubt", "asap", "pending", "{}", "0", "3", None, "priority: Input should be"),
    (6, "bad type!", "low", "pending", "{}", "0", "3", None, "job_type: String should match"),
    (7, "doubt", "low", "pending", "{}", "-1", "3", None, "retry_count: -1 is negative"),
    (8, "doubt", "low", "pending", "{}", "0", "lots", None, "max_retries: 'lots' is not"),
    (9, "doubt", "low", "pending", '{"q": "\\u0000"}', "0", "3", None, "payload: text may not"),
    (10, "doubt", "low", None, "{}", "0", "3", None, "status: None is not"),
    (11, "doubt", "high", "failed", None, None, None, "it broke", None),
]


def test_bad_rows_are_refused_with_their_reasons(runner: CliRunner, dsn: str) -> None:
    sql(dsn, "CREATE SCHEMA legacy")
    sql(dsn, TEXT_TABLE)
    for row in BAD_ROWS:
        sql(dsn, "INSERT INTO legacy.jobs VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", *row[:8])

    report = import_json(runner, "--table", "legacy.jobs", code=1)
    assert report["rows"] == len(BAD_ROWS)
    assert report["imported"] == {"queued": 1, "completed": 0, "failed": 1, "cancelled": 0}
    refused = {r["id"]: r for r in report["refused"]}
    expected = {str(row[0]): row for row in BAD_ROWS if row[8] is not None}
    assert set(refused) == set(expected)
    for old_id, row in expected.items():
        assert refused[old_id]["reason"].startswith(row[8]), refused[old_id]
        assert refused[old_id]["status"] == row[3]

    # NULL payload and counts: vq's defaults (an empty payload, no attempts, the
    # type's retry limit); the error message is kept.
    failed = job_of(dsn, 11, "legacy.jobs")
    assert failed["payload"] == {} and failed["retry_count"] == 0
    assert failed["max_retries"] == 3 and failed["error"]["message"] == "it broke"

    # A second run refuses the same rows again and imports nothing twice.
    again = import_json(runner, "--table", "legacy.jobs", code=1)
    assert again["imported"] == NONE
    assert again["already_imported"] == report["imported"]
    assert again["refused"] == report["refused"]
    human = invoke(runner, "import", "--table", "legacy.jobs")
    assert human.exit_code == 1
    assert "refused: 9 rows (not imported)" in human.stdout
    assert "  id 2 (status 'pending'): payload: not valid JSON" in human.stdout
    assert len(sql(dsn, "SELECT 1 FROM vq.jobs")) == 2


# -- the table's name and columns -------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ("jobs", ("expected SCHEMA.TABLE", "'jobs'")),
        ("public.jobs.extra", ("expected SCHEMA.TABLE",)),
        ("public.jobs; DROP TABLE public.keep", ("expected SCHEMA.TABLE",)),
        ('public."jobs', ("expected SCHEMA.TABLE",)),
        ("public.nope", ("no table public.nope",)),
        ("vq.jobs", ("vq's own",)),
        ("public.thin", ("public.thin lacks", "priority, payload", "needs id, job_type")),
        ("public.texty", ("public.texty.created_at is text, not a date/time",)),
    ],
)
def test_a_bad_table_exits_2_with_one_line(
    runner: CliRunner, dsn: str, table: str, words: tuple[str, ...]
) -> None:
    sql(dsn, "CREATE TABLE public.keep (x int)")
    sql(dsn, "CREATE TABLE public.thin (id int, job_type text, status text, retry_count int)")
    sql(
        dsn,
        FIRST_VERSION_TABLE.format(name="public.texty").replace(
            "created_at timestamptz", "created_at text"
        ),
    )
    result = invoke(runner, "import", "--table", table)
    assert_usage_error(result, *words)
    assert sql(dsn, "SELECT to_regclass('public.keep') IS NOT NULL AS kept")[0]["kept"]


def test_names_are_quoted_by_postgresql_never_formatted_raw(runner: CliRunner, dsn: str) -> None:
    # A schema with a space and capitals, a table whose name is an attack: both exist,
    # and the import reads them as names.
    sql(dsn, 'CREATE SCHEMA "Old Queue"')
    sql(dsn, "CREATE TABLE public.keep (x int)")
    first_version_table(dsn, 10, name='"Old Queue"."jobs; DROP TABLE public.keep; --"')
    report = import_json(runner, "--table", '"Old Queue"."jobs; DROP TABLE public.keep; --"')
    assert report["table"] == "Old Queue.jobs; DROP TABLE public.keep; --"
    assert sum(report["imported"].values()) == 10 and report["refused"] == []
    assert sql(dsn, "SELECT to_regclass('public.keep') IS NOT NULL AS kept")[0]["kept"]
    # A plain name folds to lower case, as in SQL: Public.JOBS is public.jobs.
    first_version_table(dsn, 3)
    assert import_json(runner, "--table", "Public.JOBS")["table"] == "public.jobs"
