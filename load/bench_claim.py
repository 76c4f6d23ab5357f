"""What fairness and cluster-wide caps cost the claim, measured beside the plain claim.

Drains the same queue three ways through the real store, in the same run:
- plain: no group keys, no caps (the claim of every worker before issue 11);
- groups: every job carries one of ``--groups`` group keys, so the claim takes turns
  between groups (ordered by priority, fair_seq, run_at);
- caps: group keys, plus a cluster-wide cap on the type (``max_running``, far above
  what can run, so it never binds) and a per-group cap (``max_running_per_group``):
  every claim runs under the claim lock and counts what runs everywhere.
``--claimers`` connections claim ``--batch`` jobs at a time, each completing what it
claimed before claiming again (a worker whose jobs take no time), until the queue is
empty. For each way it reports the enqueue rate (the fair_seq trigger runs on insert),
the drain rate, and the latency of one claim (p50, p99); then each as a ratio to the
plain claim of the same round. Rounds alternate the three ways; the median ratio over
the rounds is the headline.

Usage: python load/bench_claim.py [--server postgresql://postgres@127.0.0.1:5432/postgres]
       [--n 100000] [--groups 1000] [--claimers 4] [--batch 50] [--group-cap 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

import asyncpg

from vq_core import db
from vq_core.db import migrations
from vq_core.models import Actor, NewJob, QueueConfig
from vq_core.runtime import run_coroutine
from vq_core.store import Store
from vq_core.validation import QueueConfigPatch

JOB_TYPE = "doubt"
ROUTES = {JOB_TYPE: "render"}
BENCH = Actor("bench", "cli")
WAYS = ("plain", "groups", "caps")
# Far above anything that can run at once: the type's cap is counted, never binding.
UNBINDING_CAP = 1_000_000


def dsn_for(server: str, name: str) -> str:
    return server.rsplit("/", 1)[0] + "/" + name


async def fresh_store(server: str, connections: int) -> Store:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute('DROP DATABASE IF EXISTS "vq_bench_claim" WITH (FORCE)')
        await conn.execute('CREATE DATABASE "vq_bench_claim"')
    finally:
        await conn.close()
    dsn = dsn_for(server, "vq_bench_claim")
    conn = await db.connect(dsn)
    await migrations.migrate(conn)
    await conn.close()
    return Store(await db.create_pool(dsn, min_size=connections, max_size=connections))


async def prepare(store: Store, way: str, args: argparse.Namespace) -> dict[str, Any]:
    """Empty the queue, set the way's configuration, enqueue ``n`` jobs; the enqueue rate."""
    await store.pool.execute("TRUNCATE vq.jobs, vq.job_events, vq.config_changes CASCADE")
    await store.pool.execute("DELETE FROM vq.job_queue_config")
    if way == "caps":
        patch = QueueConfigPatch(max_running=UNBINDING_CAP, max_running_per_group=args.group_cap)
        await store.update_queue_config(JOB_TYPE, patch, BENCH, 600.0)
    else:
        await store.set_queue_config(QueueConfig(JOB_TYPE))
    grouped = way != "plain"
    t0 = time.perf_counter()
    for start in range(0, args.n, 5000):
        await store.enqueue_many(
            [
                # Round robin over the groups, as students arriving one after another.
                NewJob(
                    JOB_TYPE, {"i": i}, group_key=f"student-{i % args.groups}" if grouped else None
                )
                for i in range(start, min(args.n, start + 5000))
            ]
        )
    sec = time.perf_counter() - t0
    await store.pool.execute("VACUUM ANALYZE vq.jobs")
    return {"enqueue_sec": round(sec, 3), "enqueue_jobs_per_s": round(args.n / sec, 1)}


async def drain(store: Store, way: str, args: argparse.Namespace) -> dict[str, Any]:
    """Claim and complete until the queue is empty; drain rate and claim latencies."""
    limited = [JOB_TYPE] if way == "caps" else []
    latencies: list[float] = []
    claimed = 0

    async def claimer(worker_id: str) -> None:
        nonlocal claimed
        while True:
            t0 = time.perf_counter()
            jobs = await store.claim(worker_id, ROUTES, args.batch, 60, limited=limited)
            latencies.append(time.perf_counter() - t0)
            if not jobs:
                return
            claimed += len(jobs)
            await store.complete_many(worker_id, [(job.id, {}) for job in jobs])

    t0 = time.perf_counter()
    await asyncio.gather(*(claimer(f"bench-{i}") for i in range(args.claimers)))
    sec = time.perf_counter() - t0
    left = await store.pool.fetchval("SELECT count(*) FROM vq.jobs WHERE status <> 'completed'")
    if claimed != args.n or left:
        raise RuntimeError(f"{way}: claimed {claimed} of {args.n}, {left} not completed")
    ms = sorted(x * 1000 for x in latencies)

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, int(p * len(ms)))], 2)

    return {
        "drain_sec": round(sec, 3),
        "drain_jobs_per_s": round(args.n / sec, 1),
        "claims": len(ms),
        "claim_p50_ms": pct(0.5),
        "claim_p99_ms": pct(0.99),
        "claim_max_ms": round(ms[-1], 2),
    }


def ratios(way: dict[str, Any], plain: dict[str, Any]) -> dict[str, float]:
    """One way's figures over the plain claim's of the same round."""
    return {
        "drain_over_plain": round(way["drain_jobs_per_s"] / plain["drain_jobs_per_s"], 3),
        "claim_p50_over_plain": round(way["claim_p50_ms"] / plain["claim_p50_ms"], 3),
        "claim_p99_over_plain": round(way["claim_p99_ms"] / plain["claim_p99_ms"], 3),
        "enqueue_over_plain": round(way["enqueue_jobs_per_s"] / plain["enqueue_jobs_per_s"], 3),
    }


async def main(args: argparse.Namespace) -> None:
    """Alternate the three ways round by round; report every round and the median ratios."""
    store = await fresh_store(args.server, args.claimers + 1)
    rounds: list[dict[str, Any]] = []
    try:
        for _ in range(args.rounds):
            measured: dict[str, dict[str, Any]] = {}
            for way in WAYS:
                measured[way] = await prepare(store, way, args) | await drain(store, way, args)
            rounds.append(
                {
                    "ways": measured,
                    "ratios": {w: ratios(measured[w], measured["plain"]) for w in WAYS[1:]},
                }
            )
    finally:
        await store.close()
    median = {
        way: {
            key: statistics.median(r["ratios"][way][key] for r in rounds)
            for key in rounds[0]["ratios"][way]
        }
        for way in WAYS[1:]
    }
    setup = {k: getattr(args, k) for k in ("n", "groups", "claimers", "batch", "group_cap")}
    print(json.dumps({"setup": setup, "rounds": rounds, "median_ratios": median}, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server",
        default=os.environ.get("VQ_BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--n", type=int, default=100_000, help="jobs queued before each drain")
    parser.add_argument("--groups", type=int, default=1000, help="group keys the jobs spread over")
    parser.add_argument("--claimers", type=int, default=4, help="connections claiming at once")
    parser.add_argument("--batch", type=int, default=50, help="jobs asked for per claim")
    parser.add_argument("--group-cap", type=int, default=10, help="max_running_per_group (caps)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three ways")
    run_coroutine(main(parser.parse_args()), os.environ.get("VQ_EVENT_LOOP", "auto"))
