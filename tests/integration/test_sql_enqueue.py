"""vq.enqueue, the SQL function the platform calls in its own transaction (migration
0014): both or neither with the caller's rows, a worker woken at the commit, the API's
checks, idempotency, and the least-privileged role of docs/platform.md, for real."""

from __future__ import annotations

import asyncio
import re
import secrets
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import ValidationError
from support.helpers import ScriptedService, eventually, running_worker

from vq_core import db
from vq_core.config import Settings
from vq_core.errors import InvalidInput
from vq_core.models import JobStatus, NewJob, Priority
from vq_core.store import Store
from vq_core.validation import JobRequest
from vq_ui.admin.format import event_summary

PLATFORM_DOC = Path(__file__).resolve().parents[2] / "docs" / "platform.md"
ENQUEUE = "vq.enqueue(text, jsonb, text, timestamptz, integer, text, text, text)"
OPTIONAL = ("priority", "run_at", "max_retries", "idempotency_key", "group_key", "callback_url")


def _docs_sql(marker: str) -> str:
    """The ```sql block of docs/platform.md that contains ``marker``."""
    blocks = re.findall(r"```sql\n(.*?)```", PLATFORM_DOC.read_text(), re.S)
    (block,) = [b for b in blocks if marker in b]
    return block


async def enqueue(
    conn: asyncpg.Connection, job_type: Any, payload: Any = None, **named: Any
) -> Any:
    """``SELECT vq.enqueue(...)`` with the given parameters, by name as the docs show."""
    args: list[Any] = [job_type]
    parts = ["$1"]
    if payload is not None:
        args.append(payload)
        parts.append(f"${len(args)}")
    for name, value in named.items():
        assert name in OPTIONAL  # the names go into the SQL text
        args.append(value)
        parts.append(f"{name} => ${len(args)}")
    return await conn.fetchval(f"SELECT vq.enqueue({', '.join(parts)})", *args)


async def counts(conn: asyncpg.Connection) -> tuple[int, int]:
    return (
        await conn.fetchval("SELECT count(*) FROM vq.jobs"),
        await conn.fetchval("SELECT count(*) FROM vq.job_events"),
    )


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await db.connect(dsn)
    try:
        yield connection
    finally:
        await connection.close()


# -- both or neither ------------------------------------------------------------------


async def test_a_rolled_back_transaction_leaves_no_job_no_event_and_no_row_of_its_own(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("CREATE TABLE doubts (id bigint PRIMARY KEY, job_id uuid)")
    tx = conn.transaction()
    await tx.start()
    job_id = await enqueue(conn, "doubt", {"doubt_id": 1})
    await conn.execute("INSERT INTO doubts VALUES (1, $1)", job_id)
    assert await counts(conn) == (1, 1)  # there, inside the transaction
    await tx.rollback()
    assert await counts(conn) == (0, 0)
    assert await conn.fetchval("SELECT count(*) FROM doubts") == 0

    # A statement failing after the enqueue aborts the job with the rest.
    with pytest.raises(asyncpg.UniqueViolationError):
        async with conn.transaction():
            await conn.execute("INSERT INTO doubts VALUES (2, NULL)")
            await enqueue(conn, "doubt", {"doubt_id": 2})
            await conn.execute("INSERT INTO doubts VALUES (2, NULL)")
    assert await counts(conn) == (0, 0)

    async with conn.transaction():
        job_id = await enqueue(conn, "doubt", {"doubt_id": 3})
        await conn.execute("INSERT INTO doubts VALUES (3, $1)", job_id)
    assert await counts(conn) == (1, 1)
    assert await conn.fetchval("SELECT job_id FROM doubts WHERE id = 3") == job_id


async def test_the_transaction_example_of_the_docs_runs_as_written(
    conn: asyncpg.Connection, store: Store
) -> None:
    await conn.execute(_docs_sql("CREATE TABLE doubts"))
    doubt = await conn.fetchrow("SELECT * FROM doubts")
    assert doubt["id"] == 42 and doubt["job_id"] is not None
    job = await store.get_job(doubt["job_id"])
    assert job.job_type == "doubt" and job.status is JobStatus.QUEUED
    assert job.payload == {"doubt_id": 42, "question": "Why is the sky blue?"}
    assert job.priority is Priority.HIGH and job.group_key == "student-17"
    assert job.idempotency_key == "doubt-42"
    assert job.callback_url == "http://127.0.0.1:8080/vq/callback"
    # "repeating just the vq.enqueue call returns the same job id"
    again = await enqueue(conn, "doubt", {"doubt_id": 42}, idempotency_key="doubt-42")
    assert again == doubt["job_id"]


# -- what is stored -------------------------------------------------------------------


async def test_the_row_and_its_created_event_as_the_store_reads_them(
    conn: asyncpg.Connection, store: Store
) -> None:
    run_at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    job_id = await enqueue(
        conn,
        "doubt",
        {"q": "why?"},
        priority="urgent",
        run_at=run_at,
        max_retries=5,
        group_key="student-1",
        callback_url="https://127.0.0.1:9443/cb?doubt=1",
    )
    assert isinstance(job_id, uuid.UUID) and job_id.version == 7
    job = await store.get_job(job_id)
    assert (job.priority, job.run_at, job.max_retries) == (Priority.URGENT, run_at, 5)
    assert job.group_key == "student-1"
    assert job.callback_url == "https://127.0.0.1:9443/cb?doubt=1"
    assert job.payload == {"q": "why?"} and job.status is JobStatus.QUEUED
    (event,) = await store.get_events(job_id)
    assert event.event == "created" and event.details == {"by": "postgres", "via": "sql"}
    assert event_summary(event) == "by postgres via sql"  # what docs/platform.md says

    plain = await store.get_job(await enqueue(conn, "doubt"))
    assert plain.payload == {} and plain.priority is Priority.NORMAL
    assert plain.max_retries == 3 and plain.callback_url is None and plain.group_key is None
    assert plain.run_at <= datetime.now(UTC)


async def test_unset_retries_and_callback_come_from_the_types_settings(
    conn: asyncpg.Connection, store: Store
) -> None:
    await conn.execute(
        "INSERT INTO vq.job_queue_config (job_type, max_retries, callback_url)"
        " VALUES ('configured', 7, 'http://127.0.0.1:8080/default')"
    )
    defaulted = await store.get_job(await enqueue(conn, "configured"))
    assert (defaulted.max_retries, defaulted.callback_url) == (7, "http://127.0.0.1:8080/default")
    own = await store.get_job(
        await enqueue(conn, "configured", max_retries=0, callback_url="http://127.0.0.1:8080/own")
    )
    assert (own.max_retries, own.callback_url) == (0, "http://127.0.0.1:8080/own")


async def test_the_fair_seq_trigger_numbers_sql_jobs_with_the_others(
    conn: asyncpg.Connection, store: Store
) -> None:
    first = await enqueue(conn, "doubt", group_key="student-1")
    second = await enqueue(conn, "doubt", group_key="student-1")
    third = (await store.enqueue(NewJob("doubt", group_key="student-1"))).id
    other = await enqueue(conn, "doubt", group_key="student-2")
    seqs = [(await store.get_job(i)).fair_seq for i in (first, second, third, other)]
    assert seqs == [0, 1, 2, 0]


# -- idempotency ----------------------------------------------------------------------


async def test_a_repeated_key_returns_the_first_job_and_stores_nothing(
    conn: asyncpg.Connection, store: Store
) -> None:
    first = await enqueue(conn, "doubt", {"n": 1}, idempotency_key="doubt-7")
    again = await enqueue(conn, "doubt", {"n": 2}, idempotency_key="doubt-7", priority="high")
    assert again == first
    assert await counts(conn) == (1, 1)
    # The key is the store's too: the API's submission with it gets the same job.
    answer = await store.enqueue(NewJob("doubt", idempotency_key="doubt-7"))
    assert answer.id == first and answer.created is False


@pytest.mark.parametrize("first_ends", ["commit", "rollback"])
async def test_two_transactions_racing_with_one_key_get_one_job(dsn: str, first_ends: str) -> None:
    one, two = await db.connect(dsn), await db.connect(dsn)
    try:
        tx = one.transaction()
        await tx.start()
        first = await enqueue(one, "doubt", idempotency_key="raced")
        waiting = asyncio.create_task(enqueue(two, "doubt", idempotency_key="raced"))
        pid = two.get_server_pid()

        async def blocked() -> bool:
            return bool(
                await one.fetchval(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
                )
            )

        await eventually(blocked)
        assert not waiting.done()
        await (tx.commit() if first_ends == "commit" else tx.rollback())
        second = await asyncio.wait_for(waiting, timeout=10)
        if first_ends == "commit":
            assert second == first
        else:
            assert second != first
        assert await counts(one) == (1, 1)
        assert await one.fetchval("SELECT id FROM vq.jobs") == second
    finally:
        await one.close()
        await two.close()


# -- the API's checks -----------------------------------------------------------------


def _nested(levels: int, kind: str = "object") -> dict[str, Any]:
    """A payload ``levels`` deep, the payload itself being level 1 (as the API counts)."""
    inner: Any = {} if kind == "object" else []
    for _ in range(levels - 2):
        inner = {"a": inner} if kind == "object" else [inner]
    return {"a": inner} if levels > 1 else {}


_LIMIT = 262144
# (what, the request as the API gets it, the field refused or None)
PARITY: list[tuple[str, dict[str, Any], str | None]] = [
    ("job type of 64", {"job_type": "a" * 64}, None),
    ("job type of every allowed character", {"job_type": "Ab9_.:-"}, None),
    ("empty job type", {"job_type": ""}, "job_type"),
    ("job type of 65", {"job_type": "a" * 65}, "job_type"),
    ("job type with a space", {"job_type": "a b"}, "job_type"),
    ("job type with a non-ASCII letter", {"job_type": "dübt"}, "job_type"),
    ("job type with a trailing newline", {"job_type": "doubt\n"}, "job_type"),
    ("priority low", {"priority": "low"}, None),
    ("priority in capitals", {"priority": "URGENT"}, "priority"),
    ("unknown priority", {"priority": "asap"}, "priority"),
    ("payload 100 deep in objects", {"payload": _nested(100)}, None),
    ("payload 101 deep in objects", {"payload": _nested(101)}, "payload"),
    ("payload 100 deep in lists", {"payload": _nested(100, "list")}, None),
    ("payload 101 deep in lists", {"payload": _nested(101, "list")}, "payload"),
    ("payload 101 deep, wide", {"payload": {"w": "x" * 1000, "d": _nested(100)}}, "payload"),
    ("payload of the size limit", {"payload": {"s": "x" * (_LIMIT - 9)}}, None),
    ("payload a byte over", {"payload": {"s": "x" * (_LIMIT - 8)}}, "payload"),
    ("payload a list", {"payload": [1, 2]}, "payload"),
    ("payload a string", {"payload": "text"}, "payload"),
    ("max_retries 0", {"max_retries": 0}, None),
    ("max_retries 100", {"max_retries": 100}, None),
    ("max_retries -1", {"max_retries": -1}, "max_retries"),
    ("max_retries 101", {"max_retries": 101}, "max_retries"),
    ("idempotency key of 200", {"idempotency_key": "k" * 200}, None),
    ("empty idempotency key", {"idempotency_key": ""}, "idempotency_key"),
    ("idempotency key of 201", {"idempotency_key": "k" * 201}, "idempotency_key"),
    ("group key of 200", {"group_key": "g" * 200}, None),
    ("empty group key", {"group_key": ""}, "group_key"),
    ("group key of 201", {"group_key": "g" * 201}, "group_key"),
    ("callback URL", {"callback_url": "http://127.0.0.1:8080/cb?doubt=1"}, None),
    ("callback URL of 2000", {"callback_url": "https://127.0.0.1/" + "x" * 1982}, None),
    ("callback URL of 2001", {"callback_url": "https://127.0.0.1/" + "x" * 1983}, "callback_url"),
    ("callback URL not http", {"callback_url": "ftp://127.0.0.1/cb"}, "callback_url"),
    ("callback URL without a host", {"callback_url": "http:///cb"}, "callback_url"),
    ("callback URL with credentials", {"callback_url": "http://u:p@127.0.0.1/"}, "callback_url"),
    ("callback URL with port 65536", {"callback_url": "http://127.0.0.1:65536/"}, "callback_url"),
    ("callback URL with port 65535", {"callback_url": "http://127.0.0.1:65535/"}, None),
]


def _api_refuses(request: dict[str, Any]) -> str | None:
    try:
        JobRequest.model_validate(request).to_new_job()
    except ValidationError as exc:
        return str(exc.errors()[0]["loc"][0])
    except InvalidInput as exc:
        return str(exc).split(":")[0]
    return None


async def _sql_refuses(conn: asyncpg.Connection, request: dict[str, Any]) -> str | None:
    named = {k: v for k, v in request.items() if k not in ("job_type", "payload")}
    before = await counts(conn)
    try:
        await enqueue(conn, request["job_type"], request.get("payload"), **named)
    except asyncpg.InvalidParameterValueError as exc:
        assert exc.sqlstate == "22023"
        assert exc.message.startswith(f"vq.enqueue: {exc.column_name}: "), exc.message
        assert await counts(conn) == before  # nothing stored
        return str(exc.column_name)
    return None


async def test_the_api_and_vq_enqueue_refuse_the_same_requests(
    conn: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    for what, changes, refused in PARITY:
        request = {"job_type": "doubt", "payload": {}, **changes}
        with subtests.test(what):
            assert _api_refuses(request) == refused
            assert await _sql_refuses(conn, request) == refused


async def test_what_only_sql_can_send_is_refused_naming_the_parameter(
    conn: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    cases: list[tuple[str, Callable[[], Awaitable[Any]], str, str]] = [
        (
            "NULL job type",
            lambda: enqueue(conn, None),
            "job_type",
            "must match ^[A-Za-z0-9_.:-]{1,64}$",
        ),
        (
            "NULL payload",
            lambda: conn.fetchval("SELECT vq.enqueue('doubt', NULL)"),
            "payload",
            "must be a JSON object, not NULL",
        ),
        (
            "JSON null payload",
            lambda: conn.fetchval("SELECT vq.enqueue('doubt', 'null')"),
            "payload",
            "must be a JSON object, not a JSON null",
        ),
        (
            "NULL priority",
            lambda: conn.fetchval("SELECT vq.enqueue('doubt', priority => NULL)"),
            "priority",
            "must be one of urgent, high, normal, low",
        ),
        (
            "run_at infinity",
            lambda: conn.fetchval("SELECT vq.enqueue('doubt', run_at => 'infinity')"),
            "run_at",
            "must be a finite time",
        ),
        (
            "run_at -infinity",
            lambda: conn.fetchval("SELECT vq.enqueue('doubt', run_at => '-infinity')"),
            "run_at",
            "must be a finite time",
        ),
    ]
    for scheme_url in (
        "ftp://127.0.0.1/cb",
        "127.0.0.1:8080/cb",
        "http://",
        "http:// 127.0.0.1/",
        "http://127.0.0.1/a b",
        "http://127.0.0.1/" + "x" * 1990,
        "",
        "http://user@127.0.0.1/cb",
        "http://127.0.0.1:99999/cb",
        # Never deliverable; the API refuses it too (check_callback_url).
        "http://127.0.0.1:0/cb",
        "http://127.0.0.1:/cb",
    ):
        cases.append(
            (
                f"callback_url {scheme_url[:30]!r}",
                lambda url=scheme_url: enqueue(conn, "doubt", callback_url=url),  # type: ignore[misc]
                "callback_url",
                "must be an http:// or https:// URL of at most 2000 characters, with a host,"
                " a port from 1 to 65535 if any, and no user:password@",
            )
        )
    for what, call, parameter, message in cases:
        with subtests.test(what):
            with pytest.raises(asyncpg.InvalidParameterValueError) as caught:
                await call()
            assert caught.value.column_name == parameter
            assert caught.value.message == f"vq.enqueue: {parameter}: {message}"
            assert await counts(conn) == (0, 0)
    # What these checks let through.
    for url in (
        "http://127.0.0.1:8080",
        "HTTPS://127.0.0.1/cb#x",
        "http://127.0.0.1/" + "x" * 1983,
    ):
        assert await enqueue(conn, "doubt", callback_url=url)
    assert await enqueue(conn, "doubt", run_at=datetime.now(UTC) + timedelta(days=1))


async def test_a_number_for_priority_finds_no_function(conn: asyncpg.Connection) -> None:
    # docs/platform.md says so: names only, as in the API.
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await conn.fetchval("SELECT vq.enqueue('doubt', priority => 1)")


# -- the worker wakes -----------------------------------------------------------------


class Listener:
    """The ``vq_jobs`` notifications on a connection of its own; a fence notification
    shows that nothing else is on the way (they arrive in commit order)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.wakes = 0
        self._fences: dict[str, asyncio.Event] = {}

    def on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload in self._fences:
            self._fences[payload].set()
        elif payload == "":
            self.wakes += 1

    async def fenced_wakes(self) -> int:
        fence = f"fence-{uuid.uuid4()}"
        self._fences[fence] = asyncio.Event()
        await self.conn.execute("SELECT pg_notify('vq_jobs', $1)", fence)
        await asyncio.wait_for(self._fences[fence].wait(), timeout=10)
        wakes, self.wakes = self.wakes, 0
        return wakes


@pytest.fixture
async def listener(dsn: str) -> AsyncIterator[Listener]:
    connection = await db.connect(dsn)
    listening = Listener(connection)
    await connection.add_listener("vq_jobs", listening.on_notify)
    try:
        yield listening
    finally:
        await connection.close()


async def test_the_wake_up_goes_out_at_commit_and_never_for_a_rollback(
    conn: asyncpg.Connection, listener: Listener
) -> None:
    await listener.fenced_wakes()
    tx = conn.transaction()
    await tx.start()
    await enqueue(conn, "doubt")
    await enqueue(conn, "doubt")
    assert await listener.fenced_wakes() == 0  # not yet: the transaction is open
    await tx.commit()
    assert await listener.fenced_wakes() == 1  # one per transaction, folded
    async with conn.transaction():
        await enqueue(conn, "doubt")
    assert await listener.fenced_wakes() == 1
    tx = conn.transaction()
    await tx.start()
    await enqueue(conn, "doubt")
    await tx.rollback()
    assert await listener.fenced_wakes() == 0


async def test_an_idle_worker_runs_a_committed_sql_job_without_waiting_for_its_poll(
    store: Store, settings: Settings, dsn: str, conn: asyncpg.Connection
) -> None:
    # With an hour between polls, only the commit's notification can wake the worker;
    # the API's submission beside it goes the same way.
    slow_poll = settings.model_copy(update={"poll_interval": 3600.0})
    service = ScriptedService()
    async with running_worker(store, slow_poll, {"scripted": service}, dsn):
        tx = conn.transaction()
        await tx.start()
        dropped = await enqueue(conn, "scripted", {"result": {"n": 0}})
        await tx.rollback()
        async with conn.transaction():
            via_sql = await enqueue(conn, "scripted", {"result": {"n": 1}})
        via_store = (await store.enqueue(NewJob("scripted", {"result": {"n": 2}}))).id

        async def both_done() -> bool:
            jobs = [await store.get_job(i) for i in (via_sql, via_store)]
            return all(j.status is JobStatus.COMPLETED for j in jobs)

        await eventually(both_done, timeout=5)
    assert (await store.get_job(via_sql)).result == {"n": 1}
    assert sorted(j.payload["result"]["n"] for j in service.calls) == [1, 2]
    events = [e.event for e in await store.get_events(via_sql)]
    assert events[0] == "created" and events[-1] == "completed"
    assert await conn.fetchval("SELECT count(*) FROM vq.jobs WHERE id = $1", dropped) == 0


# -- the least-privileged role ---------------------------------------------------------


def _as(dsn: str, user: str, password: str) -> str:
    parts = urllib.parse.urlsplit(dsn)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}:{password}@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
async def platform_role(dsn: str) -> AsyncIterator[tuple[str, str]]:
    """A role made by the grants of docs/platform.md, as written but for its name (roles
    belong to the whole server, which other tests share): (its name, a DSN as it)."""
    role = f"vq_platform_{uuid.uuid4().hex[:10]}"
    password = secrets.token_hex(8)
    grants = _docs_sql("CREATE ROLE vq_platform")
    admin = await db.connect(dsn)
    try:
        await admin.execute(re.sub(r"\bvq_platform\b", role, grants))
        await admin.execute(f"ALTER ROLE {role} PASSWORD '{password}'")
        yield role, _as(dsn, role, password)
    finally:
        await admin.execute(f"DROP OWNED BY {role}")  # its grants in this database
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


async def test_the_documented_role_may_enqueue_and_read_and_nothing_else(
    platform_role: tuple[str, str], conn: asyncpg.Connection, subtests: pytest.Subtests
) -> None:
    role, role_dsn = platform_role
    failed = await enqueue(conn, "doubt")
    await conn.execute(
        "UPDATE vq.jobs SET status = 'failed', error = $2 WHERE id = $1",
        failed,
        {"type": "API_ERROR", "message": "boom", "stack": "Traceback (most recent call last)"},
    )
    platform = await db.connect(role_dsn)
    try:
        assert await platform.fetchval("SELECT current_user") == role
        async with platform.transaction():
            job_id = await enqueue(platform, "doubt", {"q": 1}, priority="high")
        row = await platform.fetchrow("SELECT * FROM vq.client_jobs WHERE id = $1", job_id)
        assert (row["status"], row["priority"], row["payload"]) == ("queued", "high", {"q": 1})
        assert await conn.fetchval(
            "SELECT details FROM vq.job_events WHERE job_id = $1", job_id
        ) == {"by": role, "via": "sql"}
        error = await platform.fetchval("SELECT error FROM vq.client_jobs WHERE id = $1", failed)
        assert error == {"type": "API_ERROR", "message": "boom"}  # no stack
        assert "worker_id" not in row and "lease_expires_at" not in row

        refused = [
            "INSERT INTO vq.jobs (job_type) VALUES ('doubt')",
            f"UPDATE vq.jobs SET status = 'cancelled' WHERE id = '{job_id}'",
            f"DELETE FROM vq.jobs WHERE id = '{job_id}'",
            "SELECT error FROM vq.jobs",
            f"INSERT INTO vq.job_events (job_id, event) VALUES ('{job_id}', 'completed')",
            "SELECT * FROM vq.job_events",
            "UPDATE vq.job_queue_config SET paused = true",
            f"UPDATE vq.client_jobs SET status = 'cancelled' WHERE id = '{job_id}'",
            f"DELETE FROM vq.client_jobs WHERE id = '{job_id}'",
            "CREATE FUNCTION vq.jobs_fair_seq_x() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "TRUNCATE vq.jobs",
        ]
        for statement in refused:
            with subtests.test(statement), pytest.raises(asyncpg.InsufficientPrivilegeError):
                await platform.execute(statement)
    finally:
        await platform.close()
    job = await conn.fetchrow("SELECT status FROM vq.jobs WHERE id = $1", job_id)
    assert job["status"] == "queued"
    assert await conn.fetchval("SELECT count(*) FROM vq.jobs") == 2


async def test_without_the_execute_grant_a_role_cannot_enqueue(
    dsn: str, conn: asyncpg.Connection
) -> None:
    # The migration's REVOKE ... FROM PUBLIC: reading rights alone do not enqueue.
    role, password = f"vq_reader_{uuid.uuid4().hex[:10]}", secrets.token_hex(8)
    await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        await conn.execute(f"GRANT USAGE ON SCHEMA vq TO {role}")
        await conn.execute(f"GRANT SELECT ON vq.client_jobs TO {role}")
        reader = await db.connect(_as(dsn, role, password))
        try:
            assert await reader.fetchval("SELECT count(*) FROM vq.client_jobs") == 0
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await enqueue(reader, "doubt")
        finally:
            await reader.close()
    finally:
        await conn.execute(f"DROP OWNED BY {role}")
        await conn.execute(f"DROP ROLE {role}")
    assert await counts(conn) == (0, 0)


async def test_the_function_runs_as_its_owner_with_a_fixed_search_path(
    conn: asyncpg.Connection,
) -> None:
    row = await conn.fetchrow(
        f"SELECT prosecdef, proconfig FROM pg_proc WHERE oid = '{ENQUEUE}'::regprocedure"
    )
    assert row["prosecdef"] is True
    assert row["proconfig"] == ["search_path=pg_catalog, pg_temp"]
