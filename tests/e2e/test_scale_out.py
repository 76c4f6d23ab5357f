"""A scale-out rehearsal: `vq worker` processes standing in for hosts, each reaching
PostgreSQL through a TCP proxy of its own (tests/support/tcp_proxy.py, run on this
test's event loop), as each host would over its own network link.

They drain a queue exactly once. Then one "host" loses its link mid-drain, holding jobs
in slow renders: its proxy stops forwarding (a cut link as a partition makes it, where
packets go unanswered rather than refused). The other hosts recover its jobs once their
leases run out and complete them; when the link comes back, the cut host's late work
is refused, so every job still ends completed exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.helpers import eventually
from support.tcp_proxy import TcpProxy, proxyable, tcp_proxy
from support.worker_processes import start_worker, worker_env, worker_logs

from vq_core.models import NewJob
from vq_core.store import Store

pytestmark = pytest.mark.slow
HOSTS = 4
COMPLETED = "SELECT count(*) FROM vq.jobs WHERE status = 'completed'"
COMPLETIONS = (
    "SELECT job_id, count(*) AS n FROM vq.job_events WHERE event = 'completed' GROUP BY job_id"
)


@contextlib.asynccontextmanager
async def links(dsn: str, n: int) -> AsyncIterator[list[TcpProxy]]:
    """``n`` proxies before the test server: one network link per host."""
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(tcp_proxy(dsn)) for _ in range(n)]


def host_env(dsn: str, link: TcpProxy, tmp_path: Path, **extra: str) -> dict[str, str]:
    """A worker whose every connection (pool and LISTEN) crosses ``link``."""
    return worker_env(link.dsn(dsn), tmp_path, VQ_LEASE_SECONDS="3", **extra)


async def worker_id_of(store: Store, proc: subprocess.Popen[bytes]) -> str:
    """The id the worker process registered with."""

    async def registered() -> str | None:
        return next((w.id for w in await store.list_workers() if w.pid == proc.pid), None)

    found = await eventually(registered, timeout=60, interval=0.1)
    assert found is not None
    return found


async def drained(store: Store, n: int, timeout: float) -> None:
    async def done() -> bool:
        return bool(await store.pool.fetchval(COMPLETED) == n)

    await eventually(done, timeout=timeout, interval=0.05)


async def stop(procs: list[subprocess.Popen[bytes]], tmp_path: Path) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        code = await asyncio.to_thread(p.wait, 60)
        assert code == 0, worker_logs(tmp_path)


async def test_hosts_behind_their_own_links_drain_a_queue_exactly_once(
    store: Store, dsn: str, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    if not proxyable(dsn):
        pytest.skip("the proxies need a server reached over TCP")
    jobs = 150
    async with links(dsn, HOSTS) as proxies:
        for link in proxies:
            env = host_env(dsn, link, tmp_path, VQ_TEST_SLOW_SECONDS="0.05")
            procs.append(start_worker(env, "--plugin", "slow_plugin", "--concurrency", "5"))
        ids = [await worker_id_of(store, p) for p in procs]
        enqueued = await store.enqueue_many([NewJob("slow", {"i": i}) for i in range(jobs)])

        await drained(store, jobs, timeout=120)

        completions = await store.pool.fetch(COMPLETIONS)
        assert {r["job_id"] for r in completions} == {r.id for r in enqueued}
        assert {r["n"] for r in completions} == {1}
        claims = await store.pool.fetchval(
            "SELECT count(*) FROM vq.job_events WHERE event = 'claimed'"
        )
        assert claims == jobs  # nothing ran twice
        rows = await store.pool.fetch("SELECT worker_id, count(*) FROM vq.jobs GROUP BY worker_id")
        by_host: dict[str | None, int] = {r[0]: r[1] for r in rows}
        assert set(by_host) <= set(ids)
        assert len(by_host) >= 3, by_host  # the hosts shared the queue
        await stop(procs, tmp_path)


async def test_a_host_whose_link_is_cut_has_its_jobs_recovered_by_the_others(
    store: Store, dsn: str, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    if not proxyable(dsn):
        pytest.skip("the proxies need a server reached over TCP")
    jobs = 120
    held = 4  # the cut host's slots, each filled by a slow render
    async with links(dsn, HOSTS) as proxies:
        cut_link, *other_links = proxies
        cut_host = start_worker(
            host_env(
                dsn,
                cut_link,
                tmp_path,
                VQ_TEST_SLOW_SECONDS="30",
                # Cut off, its statements and reconnections give up soon and are retried.
                VQ_DB_STATEMENT_TIMEOUT="2",
                VQ_DB_CONNECT_TIMEOUT="2",
                VQ_SHUTDOWN_GRACE="1",
                VQ_SHUTDOWN_DB_TIMEOUT="5",
            ),
            "--plugin",
            "slow_plugin",
            "--concurrency",
            str(held),
        )
        procs.append(cut_host)
        cut_id = await worker_id_of(store, cut_host)
        others = [
            start_worker(
                host_env(dsn, link, tmp_path, VQ_TEST_SLOW_SECONDS="0.3"),
                "--plugin",
                "slow_plugin",
                "--concurrency",
                "4",
            )
            for link in other_links
        ]
        procs += others
        other_ids = {await worker_id_of(store, p) for p in others}
        await store.enqueue_many([NewJob("slow", {"i": i}) for i in range(jobs)])

        async def cut_host_full() -> list[uuid.UUID]:
            rows = await store.pool.fetch(
                "SELECT id FROM vq.jobs WHERE status = 'running' AND worker_id = $1", cut_id
            )
            return [r["id"] for r in rows] if len(rows) == held else []

        # Its slots are full for 30 s: the jobs it holds cannot change until the cut.
        in_flight = set(await eventually(cut_host_full, timeout=60, interval=0.02))
        cut_link.stall()
        cut_at = time.monotonic()
        assert await store.pool.fetchval(COMPLETED) < jobs  # mid-drain

        await drained(store, jobs, timeout=120)
        recovered_in = time.monotonic() - cut_at

        recovered = await store.pool.fetch(
            "SELECT job_id FROM vq.job_events"
            " WHERE event = 'lease_expired' AND details ->> 'worker_id' = $1",
            cut_id,
        )
        assert {r["job_id"] for r in recovered} == in_flight
        finishers = await store.pool.fetch(
            "SELECT id, worker_id FROM vq.jobs WHERE id = ANY($1::uuid[])", list(in_flight)
        )
        assert {r["worker_id"] for r in finishers} <= other_ids
        # The leases (3 s) ran out, not the 30 s renders: the others did not wait for them.
        assert recovered_in < 30, recovered_in

        # The link comes back: the cut host is alive, and what it still holds is not its.
        healed_at = await store.pool.fetchval("SELECT now()")
        cut_link.resume()

        async def cut_host_back() -> bool:
            seen = await store.pool.fetchval(
                "SELECT last_heartbeat > $2 FROM vq.workers WHERE id = $1", cut_id, healed_at
            )
            return bool(seen)

        await eventually(cut_host_back, timeout=60, interval=0.1)
        await stop(procs, tmp_path)

    completions = await store.pool.fetch(COMPLETIONS)
    assert len(completions) == jobs
    assert {r["n"] for r in completions} == {1}  # each job completed exactly once
    assert await store.pool.fetchval(COMPLETED) == jobs
    by_cut_host = await store.pool.fetchval(
        "SELECT count(*) FROM vq.job_events WHERE event = 'completed' AND worker_id = $1",
        cut_id,
    )
    assert by_cut_host == 0  # its renders never finished in time to count
