"""Memory benchmark: the peak resident set of one `vq worker` draining no-op jobs.

Starts `vq worker` with its default settings (no options but the database) against a
scratch database `vq_bench_memory`, enqueues --n no-op jobs, waits until they are
done, and reads the kernel's high-water mark of the worker's resident memory
(`VmHWM` in /proc/PID/status: the true peak, not a sample) before stopping it. A bare
Python process that imports asyncpg and connects is measured the same way, as the
floor any Python worker starts from. Issue 14's target: the worker's peak at most
60 MB (graphile-worker was seen at about 105 MB and pg-boss at 126 to 136 MB).

Usage: python load/bench_memory.py [--server postgresql://postgres@127.0.0.1:5432/postgres]
       [--n 20000] [--rounds 3] [--other-build DIR]
Prints one JSON document. ``--other-build DIR`` also measures, in the same rounds, the vq
packages (vq_core, vq_plugins, vq_ui) copied into DIR, put first on PYTHONPATH: a
before/after comparison in one sitting.
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

from bench_queue import UNFINISHED, migrated_database, start_worker, stop, truncate

from vq_core import db
from vq_core.models import NewJob
from vq_core.store import Store

DATABASE = "vq_bench_memory"
TARGET_MB = 60.0
BASELINE = (
    "import asyncio, asyncpg, sys\n"
    "async def main():\n"
    "    conn = await asyncpg.connect(sys.argv[1])\n"
    "    await conn.fetchval('SELECT 1')\n"
    "    print(open('/proc/self/status').read(), flush=True)\n"
    "    await conn.close()\n"
    "asyncio.run(main())\n"
)


def peak_mb(status: str) -> float:
    """``VmHWM`` of a /proc/PID/status text, in MB (10^6 bytes)."""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError("no VmHWM line: not Linux?")


async def fresh_store(server: str) -> tuple[Store, str]:
    dsn = await migrated_database(server, DATABASE)
    return Store(await db.create_pool(dsn, min_size=1, max_size=2)), dsn


async def worker_peak(
    store: Store, dsn: str, n: int, build: str | None = None
) -> dict[str, float]:
    """Drain ``n`` no-op jobs with one default `vq worker` (of the vq packages in
    ``build`` when given); its peak RSS and drain rate."""
    await truncate(store)
    for i in range(0, n, 5000):
        await store.enqueue_many([NewJob("noop") for _ in range(i, min(n, i + 5000))])
    saved, cwd = os.environ.get("PYTHONPATH"), os.getcwd()
    if build is not None:
        # The worker's environment and directory, read by start_worker: `python -m` puts
        # its directory first on sys.path, so it starts in the build's.
        os.environ["PYTHONPATH"] = build
        os.chdir(build)
    try:
        proc = start_worker(dsn, concurrency=None, poll=None)
    finally:
        os.chdir(cwd)
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    try:
        deadline = time.monotonic() + 600
        while await store.pool.fetchval(UNFINISHED):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the worker stopped or did not finish within 600 s")
            await asyncio.sleep(0.1)
        peak = peak_mb(Path(f"/proc/{proc.pid}/status").read_text())
    finally:
        await stop(proc)
    sec = await store.pool.fetchval(
        "SELECT extract(epoch FROM max(completed_at) - min(started_at)) FROM vq.jobs"
    )
    return {"peak_rss_mb": round(peak, 1), "jobs_per_s": round(n / float(sec), 1)}


def baseline_peak(dsn: str) -> float:
    """Peak RSS of a bare Python process that imports asyncpg and connects."""
    done = subprocess.run([sys.executable, "-c", BASELINE, dsn], capture_output=True,
                          text=True, check=True, timeout=60)
    return round(peak_mb(done.stdout), 1)


async def main(args: argparse.Namespace) -> None:
    store, dsn = await fresh_store(args.server)
    try:
        workers, others, bases = [], [], []
        for _ in range(args.rounds):
            workers.append(await worker_peak(store, dsn, args.n))
            if args.other_build:
                others.append(await worker_peak(store, dsn, args.n, args.other_build))
            bases.append(await asyncio.to_thread(baseline_peak, dsn))
    finally:
        await store.pool.close()
    peak = statistics.median(w["peak_rss_mb"] for w in workers)
    other: dict[str, object] = {}
    if others:
        other = {
            "other_build": args.other_build,
            "other_worker": others,
            "other_worker_peak_rss_mb_median": statistics.median(
                w["peak_rss_mb"] for w in others
            ),
        }
    print(json.dumps({
        "n": args.n,
        "rounds": args.rounds,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "worker": workers,
        "worker_peak_rss_mb_median": peak,
        "bare_python_asyncpg_peak_rss_mb_median": statistics.median(bases),
        "target_mb": TARGET_MB,
        "pass": peak <= TARGET_MB,
        **other,
    }, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--other-build", default=None,
                        help="a directory holding another copy of vq's packages to measure too")
    asyncio.run(main(parser.parse_args()))
