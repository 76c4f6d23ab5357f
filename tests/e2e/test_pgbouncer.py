"""vq through Debian's PgBouncer in transaction mode (tests/support/pgbouncer.py).

PgBouncer stands between `vq worker` processes and PostgreSQL with a pool of four server
connections; the workers' LISTEN connections go direct (``listen_database_url``). A
drain completes each job once, the server never sees more than the pool plus one LISTEN
connection per worker, a job submitted to idle workers is picked up by notification
(their poll is a minute away), and asyncpg's prepared statements, which PgBouncer 1.18
cannot carry between server connections, are off (``database_pooler = "pgbouncer"``).

The connections are told apart in ``pg_stat_activity`` by ``application_name``, set in
each DSN: PgBouncer passes the client's on to the server connection it lends.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from support.helpers import eventually
from support.pgbouncer import PgBouncer, running_pgbouncer
from support.tcp_proxy import proxyable
from support.worker_processes import start_worker, worker_env, worker_logs

from vq_core import db
from vq_core.config import Settings
from vq_core.models import NewJob
from vq_core.store import Store

pytestmark = pytest.mark.slow
POOL = 4  # PgBouncer's server connections for the test database
WORKERS = 4
JOBS = 200
POOLED = "vq-pooled"
LISTEN = "vq-listen"

CONNECTIONS = f"""
SELECT count(*) FILTER (WHERE application_name = '{POOLED}') AS pooled,
       count(*) FILTER (WHERE application_name = '{LISTEN}') AS listen
  FROM pg_stat_activity
 WHERE datname = current_database()
"""
COMPLETED = "SELECT count(*) FROM vq.jobs WHERE status = 'completed'"


def with_app_name(dsn: str, name: str) -> str:
    """``dsn`` whose connections show as ``name`` in ``pg_stat_activity``."""
    parts = urlsplit(dsn)
    query = "&".join(q for q in (parts.query, f"application_name={name}") if q)
    return urlunsplit(parts._replace(query=query))


@pytest.fixture
def bouncer(dsn: str) -> Iterator[PgBouncer]:
    if not proxyable(dsn):
        pytest.skip("PgBouncer needs a server reached over TCP")
    with running_pgbouncer(dsn, pool_size=POOL) as pgbouncer:
        yield pgbouncer


def pooled_env(dsn: str, bouncer: PgBouncer, tmp_path: Path, **extra: str) -> dict[str, str]:
    """A worker whose pool goes through PgBouncer and whose LISTEN goes direct."""
    return worker_env(
        with_app_name(bouncer.dsn(dsn), POOLED),
        tmp_path,
        VQ_LISTEN_DATABASE_URL=with_app_name(dsn, LISTEN),
        VQ_DATABASE_POOLER="pgbouncer",
        # Straight to PostgreSQL, four such pools alone would hold 12 connections.
        VQ_POOL_MIN_SIZE="3",
        VQ_POOL_MAX_SIZE="10",
        **extra,
    )


async def start_workers(
    store: Store, env: dict[str, str], procs: list[subprocess.Popen[bytes]], n: int
) -> None:
    """``n`` workers of the ``slow`` type, waited for until each has its LISTEN up."""
    procs += [start_worker(env, "--plugin", "slow_plugin") for _ in range(n)]

    async def all_listening() -> bool:
        for p in procs:
            assert p.poll() is None, worker_logs(Path(env["VQ_DATA_DIR"]).parent)
        listening = await store.pool.fetchval(
            "SELECT count(DISTINCT client_port) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = $1"
            " AND query LIKE 'LISTEN%'",
            LISTEN,
        )
        return bool(listening == n and len(await store.list_workers()) == n)

    await eventually(all_listening, timeout=60, interval=0.1)


async def stop_workers(procs: list[subprocess.Popen[bytes]], tmp_path: Path) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        code = await asyncio.to_thread(p.wait, 60)
        assert code == 0, worker_logs(tmp_path)


async def test_a_drain_through_pgbouncer_completes_each_job_once_within_the_pool(
    store: Store,
    dsn: str,
    bouncer: PgBouncer,
    tmp_path: Path,
    procs: list[subprocess.Popen[bytes]],
) -> None:
    env = pooled_env(dsn, bouncer, tmp_path, VQ_TEST_SLOW_SECONDS="0.02", VQ_CONCURRENCY="10")
    await start_workers(store, env, procs, WORKERS)
    ids = {r.id for r in await store.enqueue_many([NewJob("slow", {"i": i}) for i in range(JOBS)])}

    pooled: list[int] = []
    listen: list[int] = []
    deadline = time.monotonic() + 120
    while await store.pool.fetchval(COMPLETED) < JOBS:
        assert time.monotonic() < deadline, f"drain unfinished\n{bouncer.log_text()}"
        row = await store.pool.fetchrow(CONNECTIONS)
        assert row is not None
        pooled.append(row["pooled"])
        listen.append(row["listen"])
        await asyncio.sleep(0.01)  # sampling interval, bounded by the deadline

    # At most PgBouncer's pool of server connections, and it was used.
    assert 1 <= max(pooled) <= POOL, pooled
    # Besides the pool, one direct LISTEN connection per worker and nothing else.
    assert max(listen) == WORKERS, listen
    completed = await store.pool.fetch(
        "SELECT job_id, count(*) AS n FROM vq.job_events WHERE event = 'completed' GROUP BY job_id"
    )
    assert {r["job_id"] for r in completed} == ids
    assert {r["n"] for r in completed} == {1}  # each job completed once
    takers = await store.pool.fetchval(
        "SELECT count(DISTINCT worker_id) FROM vq.jobs WHERE status = 'completed'"
    )
    assert takers >= 2  # the work was shared, through the one pool
    await stop_workers(procs, tmp_path)
    assert "ERROR" not in bouncer.log_text(), bouncer.log_text()


async def test_wake_ups_reach_idle_workers_through_the_direct_listen_url(
    store: Store,
    dsn: str,
    bouncer: PgBouncer,
    tmp_path: Path,
    procs: list[subprocess.Popen[bytes]],
) -> None:
    # Nothing but a notification brings these workers to claim within a minute.
    env = pooled_env(
        dsn,
        bouncer,
        tmp_path,
        VQ_POLL_INTERVAL="60",
        VQ_HEALTH_CHECK_INTERVAL="60",
        VQ_TEST_SLOW_SECONDS="0",
    )
    await start_workers(store, env, procs, 2)
    # Submitted through PgBouncer too: its NOTIFY is sent at the pooled commit.
    settings = Settings(
        database_url=bouncer.dsn(dsn), listen_database_url=dsn, database_pooler="pgbouncer"
    )
    pool = await db.create_pool(bouncer.dsn(dsn), 1, 2, db.connect_options(settings))
    pooled_store = Store(pool)
    try:
        for _ in range(3):
            submitted = time.monotonic()
            (result,) = await pooled_store.enqueue_many([NewJob("slow")])

            async def completed(job_id: uuid.UUID = result.id) -> bool:
                job = await store.get_job(job_id)
                return job is not None and job.status.value == "completed"

            await eventually(completed, timeout=10, interval=0.02)
            assert time.monotonic() - submitted < 10
    finally:
        await pooled_store.close()
    await stop_workers(procs, tmp_path)


async def test_prepared_statements_survive_transaction_pooling(
    dsn: str, bouncer: PgBouncer
) -> None:
    """Eight client connections over PgBouncer's four: with asyncpg's statement cache
    (its default) a statement prepared on one server connection is run on, or named
    again on, another; with ``database_pooler = "pgbouncer"`` every call succeeds."""

    async def round_trips(options: db.ConnectOptions) -> list[BaseException]:
        pool = await db.create_pool(bouncer.dsn(dsn), 8, 8, options)
        store = Store(pool)
        errors: list[BaseException] = []
        try:
            for i in range(40):
                calls = [
                    store.enqueue_many([NewJob("slow", {"i": i})]),
                    store.stats(),
                    store.list_workers(),
                    pool.fetchval("SELECT $1::int + 1", i),
                ] * 2
                for outcome in await asyncio.gather(*calls, return_exceptions=True):
                    if isinstance(outcome, BaseException):
                        errors.append(outcome)
        finally:
            await store.close()
        return errors

    cached = await round_trips(db.ConnectOptions())
    assert cached, "the statement cache did not break under transaction pooling"
    assert all(isinstance(e, asyncpg.PostgresError) for e in cached), cached[:3]

    settings = Settings(
        database_url=bouncer.dsn(dsn), listen_database_url=dsn, database_pooler="pgbouncer"
    )
    assert await round_trips(db.connect_options(settings)) == []
