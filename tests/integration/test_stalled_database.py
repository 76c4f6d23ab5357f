"""A database that stops answering: connections stay open, nothing comes back.

A TCP proxy (tests/support/tcp_proxy.py) stands between vq and PostgreSQL and stalls
on demand. Each bound is shown by waiting on the work with a deadline: without the
bound the work would still be waiting there (the proxy keeps the sockets open, so no
error ever arrives).
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.helpers import ScriptedService, eventually
from support.tcp_proxy import TcpProxy, proxyable, tcp_proxy

from vq_core import db
from vq_core.config import Settings
from vq_core.db.listener import Listener
from vq_core.models import ClaimedJob, JobStatus, NewJob
from vq_core.plugins import PluginManager, make_plugin_manager
from vq_core.runtime import DatabaseUnavailable, open_runtime
from vq_core.store import Store
from vq_core.video_service import ProgressCallback
from vq_core.worker.claiming import Claimer
from vq_core.worker.process import Worker
from vq_core.worker.routing import Router

# Longer than any deadline below: a bound that holds only thanks to the statement
# timeout would show up as a test that waits past its deadline.
SLOW_STATEMENTS = db.ConnectOptions(connect_timeout=2, statement_timeout=600)


@pytest.fixture
async def proxy(dsn: str) -> AsyncIterator[TcpProxy]:
    if not proxyable(dsn):
        pytest.skip("the test server is not reached over TCP")
    async with tcp_proxy(dsn) as started:
        yield started


async def _ends_within(seconds: float, work: asyncio.Future[Any]) -> float:
    """Seconds ``work`` took; fails if it is still running after ``seconds``."""
    started = time.monotonic()
    done, _ = await asyncio.wait({work}, timeout=seconds)
    assert work in done, f"still waiting after {seconds}s"
    return time.monotonic() - started


class ProgressNoted(ScriptedService):
    """Tells when a ``hold`` job's progress write has come back (it then waits on its gate)."""

    def __init__(self) -> None:
        super().__init__()
        self._progressed: dict[str, asyncio.Event] = {}

    def progressed(self, hold: str) -> asyncio.Event:
        return self._progressed.setdefault(hold, asyncio.Event())

    async def render(self, job: ClaimedJob, progress: ProgressCallback) -> dict[str, Any]:
        async def noted(percent: float, stage: str) -> None:
            await progress(percent, stage)
            self.progressed(job.payload["hold"]).set()

        return await super().render(job, noted)


def _socket(conn: Any) -> Any:
    raw = getattr(conn, "_con", conn)  # a pooled connection wraps the connection
    return raw._transport.get_extra_info("socket")


async def test_a_statement_on_a_stalled_connection_times_out(dsn: str, proxy: TcpProxy) -> None:
    options = db.ConnectOptions(connect_timeout=2, statement_timeout=1)
    pool = await db.create_pool(proxy.dsn(dsn), min_size=1, max_size=1, options=options)
    try:
        assert await pool.fetchval("SELECT 1") == 1
        proxy.stall()
        query = asyncio.ensure_future(pool.fetchval("SELECT 1"))
        # One statement timeout for the statement, one for asyncpg's cancel request.
        await _ends_within(10, query)
        with pytest.raises(TimeoutError):
            query.result()
        proxy.resume()
        # The connection the statement was stuck on was dropped, not handed out again.
        assert await pool.fetchval("SELECT 2") == 2
    finally:
        pool.terminate()


async def test_connecting_to_a_stalled_server_times_out(dsn: str, proxy: TcpProxy) -> None:
    proxy.stall()
    attempt = asyncio.ensure_future(
        db.connect(proxy.dsn(dsn), db.ConnectOptions(connect_timeout=1))
    )
    await _ends_within(10, attempt)
    with pytest.raises(TimeoutError):
        attempt.result()


async def test_pool_and_listener_connections_send_tcp_keepalives(dsn: str) -> None:
    if not proxyable(dsn):
        pytest.skip("keepalives are for TCP; the test server is reached over a unix socket")
    options = db.ConnectOptions(keepalives_idle=7, keepalives_interval=3, keepalives_count=4)
    pool = await db.create_pool(dsn, min_size=1, max_size=1, options=options)
    listener = Listener(dsn, {"vq_jobs": lambda _payload: None}, options)
    await listener.open()
    try:
        async with pool.acquire() as conn:
            sockets = [_socket(conn), _socket(listener._conn)]
        for sock in sockets:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 7
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 3
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4
    finally:
        await listener.close()
        await pool.close()


def test_the_settings_become_the_connection_bounds(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        db_connect_timeout=3,
        db_statement_timeout=4,
        db_keepalives_idle=5,
        db_keepalives_interval=6,
        db_keepalives_count=7,
    )
    assert db.connect_options(settings) == db.ConnectOptions(3, 4, 5, 6, 7)


async def test_a_server_that_does_not_answer_at_start_gets_a_clear_error(
    dsn: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    settings = Settings(database_url=proxy.dsn(dsn), data_dir=tmp_path, db_connect_timeout=1)
    proxy.stall()

    async def start() -> None:
        async with open_runtime(settings):
            raise AssertionError("the runtime opened on a stalled server")

    starting = asyncio.ensure_future(start())
    await _ends_within(10, starting)
    with pytest.raises(DatabaseUnavailable, match="cannot use the database: no answer within 1s"):
        starting.result()


async def test_a_stop_does_not_wait_for_a_stalled_claim(
    dsn: str, settings: Settings, proxy: TcpProxy
) -> None:
    pool = await db.create_pool(proxy.dsn(dsn), 1, 2, SLOW_STATEMENTS)
    started: list[ClaimedJob] = []

    async def execute(job: ClaimedJob) -> None:
        started.append(job)

    claimer = Claimer(
        worker_id="stalled",
        store=Store(pool),
        router=Router({"scripted": ScriptedService()}, {}),
        settings=settings,
        execute=execute,
        tasks={},
        jobs={},
    )
    stop = asyncio.Event()
    try:
        proxy.stall()
        run = asyncio.ensure_future(claimer.run(stop))
        await proxy.wait_held(1, timeout=10)  # a claim is on the wire, unanswered
        stop.set()
        await _ends_within(2, run)
        run.result()
        assert claimer.claims_in_flight()
        claimer.abandon()
        assert started == []
    finally:
        pool.terminate()


@pytest.mark.parametrize(
    "finished_into_the_stall",
    [False, True],
    ids=["release-stalls", "completion-write-stalls"],
)
async def test_a_stalled_worker_stops_within_its_bound(
    store: Store, dsn: str, settings: Settings, proxy: TcpProxy, finished_into_the_stall: bool
) -> None:
    quick = settings.model_copy(update={"shutdown_grace": 0.5, "shutdown_db_timeout": 1.0})
    # Connections made in advance: the shutdown's statements go out on them and stall,
    # instead of waiting to connect.
    pool = await db.create_pool(proxy.dsn(dsn), 8, 8, SLOW_STATEMENTS)
    service = ProgressNoted()
    worker = Worker(Store(pool), quick, _plugins(quick), {"scripted": service}, proxy.dsn(dsn))
    stop = asyncio.Event()
    run = asyncio.ensure_future(worker.run(stop))
    holds = ["held", "finishes"] if finished_into_the_stall else ["held"]
    try:
        ids = [(await store.enqueue(NewJob("scripted", {"hold": h}))).id for h in holds]
        # Stalled during its progress write, a job would take its abort wait to stop.
        for hold in holds:
            await asyncio.wait_for(service.progressed(hold).wait(), 10)
        proxy.stall()
        if finished_into_the_stall:
            service.gate("finishes").set()  # its completion cannot be written
        await proxy.wait_held(2, timeout=10)
        stop.set()
        took = await _ends_within(quick.shutdown_grace + 10 + quick.shutdown_db_timeout + 1, run)
        run.result()
        # Nothing here is slow to abort, so the grace and the database budget are all.
        assert took < quick.shutdown_grace + quick.shutdown_db_timeout + 1
        closing = asyncio.ensure_future(db.close_pool(pool, 1.0))
        await _ends_within(3, closing)
        assert closing.result() is False  # the stalled connections were dropped
    finally:
        stop.set()
        pool.terminate()
    # The jobs are still the stalled worker's in the database, until their lease ends.
    for job_id in ids:
        assert (await store.get_job(job_id)).status is JobStatus.RUNNING
    recovered = await eventually(_expired_and_requeued(store, set(ids)), timeout=30)
    assert recovered == set(ids)


async def test_a_stop_during_start_up_ends_the_worker(
    dsn: str, settings: Settings, proxy: TcpProxy
) -> None:
    quick = settings.model_copy(update={"shutdown_db_timeout": 1.0})
    pool = await db.create_pool(proxy.dsn(dsn), 1, 2, SLOW_STATEMENTS)
    worker = Worker(Store(pool), quick, _plugins(quick), {"scripted": ScriptedService()}, dsn)
    stop = asyncio.Event()
    try:
        proxy.stall()
        run = asyncio.ensure_future(worker.run(stop))
        await proxy.wait_held(1, timeout=10)  # reading the per-type configuration
        stop.set()
        await _ends_within(quick.shutdown_db_timeout + 1, run)
        run.result()
        assert not worker.started.is_set()
    finally:
        pool.terminate()


def _plugins(settings: Settings) -> PluginManager:
    return make_plugin_manager(settings, load_entrypoints=False)


def _expired_and_requeued(store: Store, ids: set[uuid.UUID]) -> Any:
    async def check() -> set[uuid.UUID] | None:
        await store.recover_expired_leases()
        rows = await store.pool.fetch(
            "SELECT id FROM vq.jobs WHERE id = ANY($1::uuid[]) AND status = 'queued'", list(ids)
        )
        found = {r["id"] for r in rows}
        return found if found == ids else None

    return check


async def test_closing_a_listener_on_a_stalled_connection_is_bounded(
    dsn: str, proxy: TcpProxy
) -> None:
    listener = Listener(proxy.dsn(dsn), {"vq_jobs": lambda _payload: None}, SLOW_STATEMENTS)
    await listener.open()
    proxy.stall()
    closing = asyncio.ensure_future(listener.close(timeout=1))
    await _ends_within(3, closing)
    closing.result()
    assert not listener.alive


async def test_a_pool_that_cannot_close_is_dropped_in_time(dsn: str, proxy: TcpProxy) -> None:
    pool = await db.create_pool(proxy.dsn(dsn), 1, 1, SLOW_STATEMENTS)
    proxy.stall()
    closing = asyncio.ensure_future(db.close_pool(pool, 1.0))
    await _ends_within(3, closing)
    assert closing.result() is False
