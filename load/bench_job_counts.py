"""What migration 0016's count triggers cost the queue's statements, measured in PostgreSQL.

Creates the database ``vq_bench_job_counts``, migrates it, then in rounds that alternate
the triggers on and off (``ALTER TABLE vq.jobs ENABLE/DISABLE TRIGGER``, same database,
moments apart) times the store's own calls: ``enqueue_many`` of --n jobs in batches of
1,000, then a drain of them by ``claim`` of 500 and ``complete_many`` of 500 (the worker's
statements, without the worker process around them, so the triggers' share is at its
largest here). Wall time and the server process's CPU time (/proc/PID/schedstat: the
server must be on this machine), the second much steadier on a machine others load.
Prints one JSON document: per round the seconds, and the median ratios "on over off"
(above 1: the triggers cost that much).

Usage: python load/bench_job_counts.py [--server postgresql://postgres@127.0.0.1:5432/postgres]
       [--n 20000] [--rounds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench_queue import migrated_database

from vq_core import db
from vq_core.models import NewJob
from vq_core.store import Store

DATABASE = "vq_bench_job_counts"
TRIGGERS = ("jobs_counts_insert", "jobs_counts_update", "jobs_counts_delete")


def cpu_s(pid: int) -> float:
    """CPU time of a server process so far (/proc/PID/schedstat, nanoseconds): what the
    statements cost the server, much less disturbed by other load than wall time."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


async def one_round(store: Store, n: int, on: bool) -> dict[str, Any]:
    switch = "ENABLE" if on else "DISABLE"
    for name in TRIGGERS:
        await store.pool.execute(f"ALTER TABLE vq.jobs {switch} TRIGGER {name}")
    await store.pool.execute("TRUNCATE vq.jobs, vq.job_events, vq.workers CASCADE")
    await store.pool.execute("VACUUM ANALYZE vq.jobs")
    pid = await store.pool.fetchval("SELECT pg_backend_pid()")  # the pool's one connection
    t0, c0 = time.perf_counter(), cpu_s(pid)
    for i in range(0, n, 1000):
        await store.enqueue_many([NewJob("noop", {"i": j}) for j in range(i, min(n, i + 1000))])
    enqueue_s, enqueue_cpu = time.perf_counter() - t0, cpu_s(pid) - c0
    t0, c0 = time.perf_counter(), cpu_s(pid)
    done = 0
    while True:
        jobs = await store.claim("bench", {"noop": "noop"}, 500, 60)
        if not jobs:
            break
        done += len(await store.complete_many("bench", [(j.id, {"ok": True}) for j in jobs]))
    drain_s, drain_cpu = time.perf_counter() - t0, cpu_s(pid) - c0
    assert done == n, done
    counted = await store.pool.fetchval("SELECT coalesce(sum(n), 0)::bigint FROM vq.job_counts")
    return {
        "triggers": on,
        "enqueue_s": round(enqueue_s, 3),
        "drain_s": round(drain_s, 3),
        "server_cpu_enqueue_s": round(enqueue_cpu, 3),
        "server_cpu_drain_s": round(drain_cpu, 3),
        "counted": counted,
    }


async def main(args: argparse.Namespace) -> None:
    dsn = await migrated_database(args.server, DATABASE)
    store = Store(await db.create_pool(dsn, min_size=1, max_size=1))
    rounds: list[dict[str, Any]] = []
    try:
        await one_round(store, min(args.n, 2000), True)  # warm-up: caches, plans
        for r in range(args.rounds):
            # on/off, then off/on: neither always runs first.
            order = (True, False) if r % 2 == 0 else (False, True)
            pair = {str(on): await one_round(store, args.n, on) for on in order}
            print(json.dumps(pair), file=sys.stderr)  # progress, in case of an interruption
            rounds.append(
                {
                    "on": pair["True"],
                    "off": pair["False"],
                    "enqueue_on_over_off": round(
                        pair["True"]["enqueue_s"] / pair["False"]["enqueue_s"], 3
                    ),
                    "drain_on_over_off": round(
                        pair["True"]["drain_s"] / pair["False"]["drain_s"], 3
                    ),
                    "server_cpu_enqueue_on_over_off": round(
                        pair["True"]["server_cpu_enqueue_s"]
                        / pair["False"]["server_cpu_enqueue_s"],
                        3,
                    ),
                    "server_cpu_drain_on_over_off": round(
                        pair["True"]["server_cpu_drain_s"] / pair["False"]["server_cpu_drain_s"], 3
                    ),
                }
            )
    finally:
        await store.close()
    median = {
        k: round(statistics.median(r[k] for r in rounds), 3)
        for k in (
            "enqueue_on_over_off",
            "drain_on_over_off",
            "server_cpu_enqueue_on_over_off",
            "server_cpu_drain_on_over_off",
        )
    }
    print(json.dumps({"n": args.n, "rounds": rounds, "median": median}, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=8)
    asyncio.run(main(parser.parse_args()))
