"""vq's queue benchmark, run beside the bare-SQL baseline on the same database server.

Measures, through the real store and one real `vq worker` process:
- enqueue rate, batched (enqueue_many) and one job per call;
- drain rate of pre-enqueued no-op jobs through one worker process, with full
  bookkeeping (events, leases, worker counters);
- enqueue-to-start latency (p50/p95/p99) at a steady submission rate, of jobs the
  store submits (as the API does) and, alternating with them in the same run and to the
  same worker, of jobs enqueued by the SQL function vq.enqueue (the platform's way).
Then runs ../shared/bench/bare_sql_queue.py (enqueue, drain and latency) against the same
server and prints one JSON document with vq's numbers, the baseline's and the ratios.

Usage: python load/bench_queue.py [--server postgresql://postgres@127.0.0.1:5432/postgres]
       [--n 20000] [--concurrency 200] [--rate 200] [--seconds 10] [--rounds 3]
       [--only enqueue,single,drain,latency]
vq and the baseline alternate, round by round, so each ratio compares runs made
moments apart; the median ratio over the rounds is the headline.

       python load/bench_queue.py --peers [--peers-dir DIR] [--n 20000] [--rounds 3]
--peers measures batch enqueue and drain (one and two `vq worker` processes at vq's
default settings) beside bare SQL and every peer queue installed in DIR (see peers.py),
and judges issue 14's targets on the median ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import peers

from vq_core import db
from vq_core.db import migrations
from vq_core.models import NewJob
from vq_core.runtime import run_coroutine
from vq_core.store import Store

ROOT = Path(__file__).resolve().parent.parent
BARE_SQL = ROOT.parent / "shared" / "bench" / "bare_sql_queue.py"


# The platform's own way in (migration 0014): one statement, as an application would
# send it inside its transaction; here it is the whole transaction.
SQL_ENQUEUE = "SELECT vq.enqueue('noop', $1::jsonb)"
SQL_MARK = {"via": "sql"}

UNFINISHED = """
SELECT EXISTS (SELECT 1 FROM vq.jobs WHERE status = 'queued')
    OR EXISTS (SELECT 1 FROM vq.jobs WHERE status = 'running')
"""


# What --only may name: batch enqueue, single enqueue, drain, latency (the peers
# mode always runs its own set).
PARTS = frozenset({"enqueue", "single", "drain", "latency"})


def dsn_for(server: str, name: str) -> str:
    return server.rsplit("/", 1)[0] + "/" + name


async def fresh_database(server: str, name: str) -> str:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return dsn_for(server, name)


async def migrated_database(server: str, name: str) -> str:
    """A new, empty database ``name`` on ``server``, migrated to vq's schema; its DSN."""
    dsn = await fresh_database(server, name)
    conn = await db.connect(dsn)
    try:
        await migrations.migrate(conn)
    finally:
        await conn.close()
    return dsn


async def fresh_store(server: str) -> tuple[Store, str]:
    dsn = await migrated_database(server, "vq_bench")
    return Store(await db.create_pool(dsn, min_size=2, max_size=4)), dsn


async def truncate(store: Store) -> None:
    # CASCADE: the tables that refer to jobs (the callback outbox) go with them.
    await store.pool.execute("TRUNCATE vq.jobs, vq.job_events, vq.workers CASCADE")
    await store.pool.execute("VACUUM ANALYZE vq.jobs")


async def bench_enqueue(store: Store, n: int, batch: int) -> dict[str, Any]:
    await truncate(store)
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        await store.enqueue_many([NewJob("noop", {"i": j}) for j in range(i, min(n, i + batch))])
    dt = time.perf_counter() - t0
    return {
        "op": "enqueue_batch",
        "n": n,
        "batch": batch,
        "sec": round(dt, 3),
        "jobs_per_s": round(n / dt, 1),
    }


async def bench_enqueue_single(store: Store, n: int) -> dict[str, Any]:
    await truncate(store)
    t0 = time.perf_counter()
    for i in range(n):
        await store.enqueue(NewJob("noop", {"i": i}))
    dt = time.perf_counter() - t0
    return {"op": "enqueue_single", "n": n, "sec": round(dt, 3), "jobs_per_s": round(n / dt, 1)}


def start_worker(
    dsn: str, concurrency: int | None, poll: float | None = 1.0
) -> subprocess.Popen[bytes]:
    """One `vq worker` process; None leaves a setting at vq's default."""
    env = dict(
        os.environ,
        VQ_DATABASE_URL=dsn,
        VQ_CONFIG="/nonexistent/vq.toml",
        VQ_LOG_LEVEL="WARNING",
    )
    if poll is not None:
        env["VQ_POLL_INTERVAL"] = str(poll)
    flags = [] if concurrency is None else ["--concurrency", str(concurrency)]
    # Its start-up banner goes to stderr: stdout carries only the JSON document.
    return subprocess.Popen(
        [sys.executable, "-m", "vq_core.cli", "worker", *flags], env=env, stdout=sys.stderr
    )


async def wait_registered(store: Store, count: int = 1, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(await store.list_workers()) < count:
        if time.monotonic() > deadline:
            raise RuntimeError("the worker did not start")
        await asyncio.sleep(0.05)


async def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    await asyncio.to_thread(proc.wait, 60)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench_drain(
    store: Store,
    dsn: str,
    n: int,
    concurrency: int | None,
    workers: int = 1,
    poll: float | None = 1.0,
) -> dict[str, Any]:
    await truncate(store)
    for i in range(0, n, 5000):
        await store.enqueue_many([NewJob("noop") for _ in range(i, min(n, i + 5000))])
    await store.pool.execute("VACUUM ANALYZE vq.jobs")
    procs = [start_worker(dsn, concurrency, poll) for _ in range(workers)]
    try:
        await wait_registered(store, workers)
        # The workers register before their first claim: CPU from here on is the drain's.
        cpu0 = sum(process_cpu_s(p.pid) for p in procs)
        # Each check reads the two partial indexes, not the table, so watching for the
        # end takes no CPU from the drain being measured.
        while await store.pool.fetchval(UNFINISHED):
            await asyncio.sleep(0.1)
        cpu = sum(process_cpu_s(p.pid) for p in procs) - cpu0
    finally:
        for proc in procs:
            await stop(proc)
    # Timed by the database's own clock, from the first claim to the last completion,
    # so the worker's start-up is not counted.
    sec = await store.pool.fetchval(
        "SELECT extract(epoch FROM max(completed_at) - min(started_at)) FROM vq.jobs"
    )
    events = await store.pool.fetchval("SELECT count(*) FROM vq.job_events")
    return {
        "op": "drain",
        "n": n,
        "workers": workers,
        "concurrency": concurrency if concurrency is not None else "default",
        "sec": round(float(sec), 3),
        "jobs_per_s": round(n / float(sec), 1),
        "events_written": events,
        "worker_cpu_s": round(cpu, 2),
        "worker_cpu_us_per_job": round(cpu / n * 1e6, 1),
    }


async def bench_latency(
    store: Store, dsn: str, rate: float, seconds: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Latencies of store-submitted and of SQL-enqueued jobs, every other job each way,
    at ``rate`` jobs per second in all, through one worker: the same load and the same
    moments for both, so their ratio compares the ways in and nothing else."""
    await truncate(store)
    proc = start_worker(dsn, 50, poll=1.0)
    try:
        await wait_registered(store)
        n = int(rate * seconds)
        t0 = time.perf_counter()
        for i in range(n):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the producer at a steady rate
            if i % 2:
                await store.pool.fetchval(SQL_ENQUEUE, SQL_MARK)
            else:
                await store.enqueue(NewJob("noop"))
        while await store.pool.fetchval("SELECT count(*) FROM vq.jobs WHERE started_at IS NULL"):
            await asyncio.sleep(0.05)
    finally:
        await stop(proc)
    rows = await store.pool.fetch(
        "SELECT extract(epoch FROM started_at - created_at) * 1000 AS ms,"
        " payload ? 'via' AS sql FROM vq.jobs"
    )
    return (
        latency_summary("latency", [float(r["ms"]) for r in rows if not r["sql"]], rate),
        latency_summary("latency_sql", [float(r["ms"]) for r in rows if r["sql"]], rate),
    )


def latency_summary(op: str, ms: list[float], rate: float) -> dict[str, Any]:
    """Percentiles of enqueue-to-start times; ``rate`` is the whole run's."""
    lat = sorted(ms)

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))], 2)

    return {
        "op": op,
        "jobs": len(lat),
        "rate": rate,
        "p50_ms": pct(0.5),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": round(lat[-1], 2),
        "mean_ms": round(statistics.fmean(lat), 2),
    }


def bare_sql(server: str, *args: str) -> dict[str, Any]:
    env = dict(os.environ, BARE_SQL_DSN=dsn_for(server, "bare_sql_bench"))
    out = subprocess.run(
        [sys.executable, str(BARE_SQL), *args], env=env, check=True, capture_output=True, text=True
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


async def bare_latency(server: str, rate: float, seconds: float) -> dict[str, Any]:
    """The baseline's enqueue-to-start latency: its LISTEN/NOTIFY consumer and producer."""
    dsn = dsn_for(server, "bare_sql_bench")
    env = dict(os.environ, BARE_SQL_DSN=dsn)
    conn = await asyncpg.connect(dsn)
    await conn.execute("DROP TABLE IF EXISTS jobs")
    consumer = subprocess.Popen(
        [
            sys.executable,
            str(BARE_SQL),
            "consume-latency",
            "--seconds",
            str(seconds + 3),
            "--workers",
            "1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    # The consumer creates its table, then listens; produce only once it exists.
    deadline = time.monotonic() + 30
    while not await conn.fetchval("SELECT to_regclass('jobs') IS NOT NULL"):
        if time.monotonic() > deadline:
            raise RuntimeError("the bare-SQL consumer did not start")
        await asyncio.sleep(0.05)
    await conn.close()
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(BARE_SQL), "produce", "--rate", str(rate), "--seconds", str(seconds)],
        env=env,
        check=True,
        capture_output=True,
    )
    out, _ = await asyncio.to_thread(consumer.communicate)
    return dict(json.loads(out.strip().splitlines()[-1]))


async def vq_round(store: Store, dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    """One measurement of each of vq's numbers."""
    only = args.only
    numbers: dict[str, Any] = {}
    if "enqueue" in only:
        numbers["enqueue_batch"] = await bench_enqueue(store, args.n, 1000)
    if "single" in only:
        numbers["enqueue_single"] = await bench_enqueue_single(store, args.single)
    if "drain" in only:
        numbers["drain"] = await bench_drain(store, dsn, args.n, args.concurrency)
    if "latency" in only:
        numbers["latency"], numbers["latency_sql"] = await bench_latency(
            store, dsn, args.rate, args.seconds
        )
    return numbers


async def bare_round(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement of each of the baseline's numbers."""
    await fresh_database(args.server, "bare_sql_bench")
    n, server, only = str(args.n), args.server, args.only
    numbers: dict[str, Any] = {}
    if "enqueue" in only or "drain" in only:
        # The drain needs the queue filled; timed only when asked for.
        enqueued = bare_sql(server, "enqueue", "--n", n, "--batch", "1000")
        if "enqueue" in only:
            numbers["enqueue"] = enqueued
    if "drain" in only:
        numbers["drain"] = bare_sql(server, "drain", "--n", n, "--claim", "50", "--workers", "2")
    if "latency" in only:
        numbers["latency"] = await bare_latency(server, args.rate, args.seconds)
    return numbers


def ratios(vq: dict[str, Any], bare: dict[str, Any]) -> dict[str, float]:
    """vq over the baseline, measured in the same round (the parts --only ran)."""
    out = {}
    if "drain" in vq:
        out["drain_vq_over_bare"] = round(
            vq["drain"]["jobs_per_s"] / bare["drain"]["jobs_per_s"], 3
        )
    if "enqueue_batch" in vq:
        out["enqueue_vq_over_bare"] = round(
            vq["enqueue_batch"]["jobs_per_s"] / bare["enqueue"]["jobs_per_s"], 3
        )
    if "latency" in vq:
        out["latency_p50_vq_over_bare"] = round(
            vq["latency"]["p50_ms"] / bare["latency"]["p50_ms"], 3
        )
    return out


def sql_over_store(vq: dict[str, Any]) -> dict[str, float]:
    """SQL-enqueued over store-submitted latency, measured in the same run."""
    if "latency" not in vq:
        return {}
    return {
        f"latency_{p}_sql_over_store": round(
            vq["latency_sql"][f"{p}_ms"] / vq["latency"][f"{p}_ms"], 3
        )
        for p in ("p50", "p95", "p99")
    }


async def main(args: argparse.Namespace) -> None:
    """Alternate vq and baseline rounds; report every round and the median ratios."""
    rounds: list[dict[str, Any]] = []
    store, dsn = await fresh_store(args.server)
    try:
        for _ in range(args.rounds):
            vq = await vq_round(store, dsn, args)
            bare = await bare_round(args) if BARE_SQL.exists() else None
            rounds.append(
                {
                    "vq": vq,
                    "bare_sql": bare,
                    "ratios": {**(ratios(vq, bare) if bare else {}), **sql_over_store(vq)},
                }
            )
    finally:
        await store.close()
    keys = rounds[0]["ratios"].keys()
    median = {k: statistics.median(r["ratios"][k] for r in rounds) for k in keys}
    print(json.dumps({"rounds": rounds, "median_ratios": median}, indent=2))


# --peers: vq, the bare-SQL baseline and the peer queues, in rounds.

DRAIN_PEER = "graphile-worker"  # the peer the drain target names, at its best setting


async def vq_peers_round(store: Store, dsn: str, n: int) -> dict[str, Any]:
    """vq's numbers for the peer comparison: every worker at vq's default settings."""
    return {
        "enqueue_batch": await bench_enqueue(store, n, 1000),
        "drain": await bench_drain(store, dsn, n, None, workers=1, poll=None),
        "drain_two_workers": await bench_drain(store, dsn, n, None, workers=2, poll=None),
    }


async def bare_peers_round(server: str, n: int) -> dict[str, Any]:
    await fresh_database(server, "bare_sql_bench")
    return {
        "enqueue": bare_sql(server, "enqueue", "--n", str(n), "--batch", "1000"),
        "drain": bare_sql(server, "drain", "--n", str(n), "--claim", "50", "--workers", "2"),
    }


def peer_round(peer: peers.Peer, folder: Path, server: str, n: int) -> dict[str, Any]:
    """One peer's enqueue and drain; a failing script is reported, not raised."""
    try:
        return peers.measure(peer, folder, server, n)
    except subprocess.CalledProcessError as e:
        return {"failed": f"exit {e.returncode}: {str(e.stderr or '').strip()[-300:]}"}
    except (subprocess.TimeoutExpired, RuntimeError, ValueError) as e:
        return {"failed": str(e)[-300:]}


def rate(numbers: dict[str, Any] | None, op: str) -> float | None:
    if not numbers or op not in numbers:
        return None
    return float(numbers[op]["jobs_per_s"])


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def peer_ratios(round_: dict[str, Any]) -> dict[str, float | None]:
    """vq over each of the others, measured in the same round."""
    vq = round_["vq"]
    out = {
        "drain_two_workers_over_one": ratio(rate(vq, "drain_two_workers"), rate(vq, "drain")),
    }
    for name, numbers in round_["others"].items():
        key = name.replace("-", "_")
        out[f"drain_vq_over_{key}"] = ratio(rate(vq, "drain"), rate(numbers, "drain"))
        out[f"enqueue_vq_over_{key}"] = ratio(rate(vq, "enqueue_batch"), rate(numbers, "enqueue"))
    return out


def median_ratios(rounds: list[dict[str, Any]]) -> dict[str, float | None]:
    keys = rounds[0]["ratios"].keys()
    result: dict[str, float | None] = {}
    for k in keys:
        values = [r["ratios"][k] for r in rounds if r["ratios"].get(k) is not None]
        result[k] = round(statistics.median(values), 3) if values else None
    return result


def verdict(value: float | None, passes: bool) -> dict[str, Any]:
    if value is None:
        return {"ratio": None, "result": "skipped"}
    return {"ratio": value, "result": "pass" if passes else "fail"}


def peer_targets(median: dict[str, float | None]) -> dict[str, dict[str, Any]]:
    """Issue 14's queue targets, judged on the median ratios."""
    drain = median.get(f"drain_vq_over_{DRAIN_PEER.replace('-', '_')}")
    enqueue = median.get("enqueue_vq_over_bare_sql")
    two = median.get("drain_two_workers_over_one")
    return {
        "drain: one vq worker >= graphile-worker (ratio >= 1.0)": verdict(
            drain, drain is not None and drain >= 1.0
        ),
        "batch enqueue >= 0.5 x bare SQL": verdict(enqueue, enqueue is not None and enqueue >= 0.5),
        "a second vq worker adds drain throughput (ratio > 1.0)": verdict(
            two, two is not None and two > 1.0
        ),
    }


async def peers_main(args: argparse.Namespace) -> None:
    """Rounds of vq, bare SQL and every installed peer, their order rotating round by
    round; one JSON document with every measurement, the median ratios and the targets."""
    folder = peers.peers_dir(args.peers_dir)
    skipped: dict[str, str] = {}
    ready: list[peers.Peer] = []
    for peer in peers.PEERS:
        why = peers.missing(peer, folder)
        if why:
            skipped[peer.name] = why
            continue
        await peers.prepare(peer, folder, args.server)
        ready.append(peer)
    if not BARE_SQL.exists():
        skipped["bare_sql"] = f"{BARE_SQL} not found"
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = os.getloadavg()
    store, dsn = await fresh_store(args.server)
    # Each target is a coroutine factory, so the rotation below changes who runs first.
    targets: list[tuple[str, Any]] = [("vq", lambda: vq_peers_round(store, dsn, args.n))]
    if BARE_SQL.exists():
        targets.append(("bare_sql", lambda: bare_peers_round(args.server, args.n)))
    for peer in ready:
        targets.append(
            (
                peer.name,
                lambda p=peer: asyncio.to_thread(peer_round, p, folder, args.server, args.n),
            )
        )
    rounds: list[dict[str, Any]] = []
    try:
        for r in range(args.rounds):
            order = targets[r % len(targets) :] + targets[: r % len(targets)]
            measured = {name: await run() for name, run in order}
            vq = measured.pop("vq")
            round_ = {"order": [name for name, _ in order], "vq": vq, "others": measured}
            round_["ratios"] = peer_ratios(round_)
            rounds.append(round_)
    finally:
        await store.close()
    median = median_ratios(rounds)
    print(
        json.dumps(
            {
                "started": started,
                "peers_dir": str(folder),
                "skipped": skipped,
                "load_average": {"before": load_before, "after": os.getloadavg()},
                "rounds": rounds,
                "median_ratios": median,
                "targets": peer_targets(median),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server",
        default=os.environ.get("VQ_BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--single", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="alternating vq/baseline rounds")
    parser.add_argument(
        "--peers",
        action="store_true",
        help="vq's drain and batch enqueue beside bare SQL and every installed peer queue",
    )
    parser.add_argument(
        "--peers-dir",
        help="prepared peers folder (default: $VQ_BENCH_PEERS or ../shared/bench/peers)",
    )
    parser.add_argument(
        "--only",
        type=lambda text: frozenset(text.split(",")),
        default=PARTS,
        help="comma-separated parts to run, of " + ",".join(sorted(PARTS)) + " (default: all)",
    )
    parsed = parser.parse_args()
    if not parsed.only <= PARTS:
        parser.error("--only: unknown part " + ",".join(sorted(parsed.only - PARTS)))
    if parsed.n < 1 or parsed.rounds < 1:
        parser.error("--n and --rounds must be at least 1")
    # The same event loop as vq's own processes and the baseline: uvloop when installed.
    entry = peers_main(parsed) if parsed.peers else main(parsed)
    run_coroutine(entry, os.environ.get("VQ_EVENT_LOOP", "auto"))
