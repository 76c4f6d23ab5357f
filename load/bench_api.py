"""API submission rate: jobs per second through ``POST /api/v1/jobs`` of a real ``vq run``.

Starts ``vq run`` on a scratch database (as ``run_locust_smoke.py`` does), creates an
operator token, then for ``--seconds`` each keeps ``--concurrency`` requests in flight:
single jobs, then batches of ``--batch``. Prints one JSON document: requests/s,
jobs/s, latency p50/p95/p99 per mode. The client shares the machine with the server,
so on a small machine the numbers are a floor.

Usage: python load/bench_api.py [--server DSN] [--concurrency 16] [--seconds 10] [--batch 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from run_locust_smoke import DEFAULT_SERVER, VQ, _admin, free_port, wait_ready


async def _hammer(
    url: str, token: str, concurrency: int, seconds: float, batch: int
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + seconds

    def body() -> Any:
        job = {"job_type": "noop", "payload": {"question": uuid.uuid4().hex}}
        return job if batch == 1 else [job] * batch

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            started = time.perf_counter()
            r = await client.post("/api/v1/jobs", json=body())
            latencies.append(time.perf_counter() - started)
            errors += r.status_code != 201

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=60
    ) as client:
        began = time.monotonic()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        elapsed = time.monotonic() - began
    ms = sorted(x * 1000 for x in latencies)
    q = statistics.quantiles(ms, n=100) if len(ms) > 1 else [ms[0]] * 99
    return {
        "batch": batch,
        "requests": len(ms),
        "errors": errors,
        "requests_per_s": round(len(ms) / elapsed, 1),
        "jobs_per_s": round(len(ms) * batch / elapsed, 1),
        "latency_ms": {"p50": round(q[49], 1), "p95": round(q[94], 1), "p99": round(q[98], 1)},
    }


def bench(args: argparse.Namespace, dsn: str, workdir: Path) -> dict[str, Any]:
    port = free_port()
    config = workdir / "vq.toml"
    # The worker of `vq run` drains the noop jobs meanwhile, as in production; the
    # per-job log lines are off, they would cost more than the jobs.
    config.write_text(
        f'database_url = "{dsn}"\ndata_dir = "{workdir / "data"}"\nport = {port}\n'
        'disabled_plugins = ["job_log"]\n',
        encoding="utf-8",
    )
    env = {**os.environ, "VQ_CONFIG": str(config)}
    url = f"http://127.0.0.1:{port}"
    with (workdir / "vq-run.log").open("w") as log:
        server = subprocess.Popen([*VQ, "run"], env=env, stdout=log, stderr=log)
    try:
        wait_ready(url, server)
        token = subprocess.run(
            [*VQ, "tokens", "create", "bench", "--role", "operator", "--quiet"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        single = asyncio.run(_hammer(url, token, args.concurrency, args.seconds, 1))
        batched = asyncio.run(_hammer(url, token, args.concurrency, args.seconds, args.batch))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    return {
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "single": single,
        "batched": batched,
    }


def main() -> int:
    """Run the benchmark and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=DEFAULT_SERVER)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    name = f"vq_bench_api_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(args.server, f'CREATE DATABASE "{name}"'))
    try:
        with tempfile.TemporaryDirectory(prefix="vq-bench-api-") as folder:
            dsn = args.server.rsplit("/", 1)[0] + "/" + name
            result = bench(args, dsn, Path(folder))
    finally:
        asyncio.run(_admin(args.server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print(json.dumps(result, indent=2))
    return 0 if result["single"]["errors"] == 0 and result["batched"]["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
