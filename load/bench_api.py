"""API submission rate: ``POST /api/v1/jobs`` of a real ``vq run`` beside the bare API.

Starts ``vq run --no-worker`` (a web process: the API alone, as behind a balancer) on a
scratch database and ``../shared/bench/bare_api.py serve`` (Starlette, asyncpg, one
INSERT: the least a submission API can do) on another, on the same PostgreSQL server.
Then, in rounds whose order alternates (vq first, then the bare API first, ...), the
bare API's own load client (``bare_api.load``: the same client, the same body, the same
``--concurrency`` requests in flight for ``--seconds``) measures both, one job per
request; each round also sends batches of ``--batch`` jobs to vq (this module's client)
to check that batches keep their lead in jobs per second. Prints one JSON document: every
round, the per-round ratios (vq over bare: requests/s, p50, p99; batch jobs/s over
single jobs/s) and their medians, and issue 14's API target judged on the medians.

``--worker`` runs vq's worker in the same process too (``vq run``), draining the jobs
through the noop service as they arrive. ``--other-vq DIR`` also runs a second ``vq run``
from another source tree (``PYTHONPATH=DIR``: an older build, to price a change) on a
database of its own, measured in the same rounds as "other" (one job per request).

Usage: python load/bench_api.py [--server DSN] [--rounds 5] [--concurrency 16]
       [--seconds 10] [--batch 100] [--worker] [--bare-script PATH] [--other-vq DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
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
from types import ModuleType
from typing import Any

import httpx
from run_locust_smoke import DEFAULT_SERVER, VQ, _admin, free_port, wait_ready

ROOT = Path(__file__).resolve().parent.parent
BARE_API = ROOT.parent / "shared" / "bench" / "bare_api.py"


def load_bare(path: Path) -> ModuleType:
    """The bare API's module: its ``load`` client and its ``BODY``."""
    spec = importlib.util.spec_from_file_location("bare_api", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _batches(
    url: str, token: str, concurrency: int, seconds: float, batch: int, job: dict[str, Any]
) -> dict[str, Any]:
    """Batches of ``batch`` copies of ``job`` to vq, ``concurrency`` requests in flight."""
    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps([job] * batch)
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one_loop() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                r = await client.post(f"{url}/api/v1/jobs", content=body, headers=headers)
                latencies.append((time.perf_counter() - started) * 1000)
                errors += r.status_code != 201

        began = time.perf_counter()
        await asyncio.gather(*(one_loop() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0]] * 99
    return {
        "batch": batch,
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "jobs_per_s": round(len(latencies) * batch / elapsed, 1),
        "p50_ms": round(q[49], 2),
        "p95_ms": round(q[94], 2),
        "p99_ms": round(q[98], 2),
    }


def _wait_bare(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    # The bare API has one route: a POST without a token answers 401 once it is up.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bare_api.py serve exited early with code {proc.returncode}")
        try:
            if httpx.post(url, content=b"{}", timeout=5).status_code == 401:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # polling a starting server, bounded by the deadline
    raise SystemExit(f"{url} not ready within {timeout}s")


def _vq(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [*VQ, *args], env=env, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def _start_vq(
    args: argparse.Namespace, dsn: str, folder: Path, source: Path | None
) -> tuple[subprocess.Popen[bytes], dict[str, str], str]:
    folder.mkdir()
    port = free_port()
    config = folder / "vq.toml"
    # Per-job log lines off (with --worker they would cost more than the noop jobs).
    config.write_text(
        f'database_url = "{dsn}"\ndata_dir = "{folder / "data"}"\nport = {port}\n'
        'disabled_plugins = ["job_log"]\n',
        encoding="utf-8",
    )
    env = {**os.environ, "VQ_CONFIG": str(config)}
    if source is not None:
        # Run from the folder: `python -m` puts the working directory first on the path.
        env["PYTHONPATH"] = str(source.resolve())
    run = [*VQ, "run"] if args.worker else [*VQ, "run", "--no-worker"]
    with (folder / "vq-run.log").open("w") as log:
        cwd = folder if source is not None else ROOT
        server = subprocess.Popen(run, env=env, stdout=log, stderr=log, cwd=cwd)
    return server, env, f"http://127.0.0.1:{port}"


def bench(args: argparse.Namespace, dsns: dict[str, str], workdir: Path) -> dict[str, Any]:
    bare = load_bare(args.bare_script)
    bare_port = free_port()
    bare_dsn = dsns["bare"]
    server, env, url = _start_vq(args, dsns["vq"], workdir / "vq", None)
    others: dict[str, tuple[subprocess.Popen[bytes], dict[str, str], str]] = {}
    if args.other_vq is not None:
        others["other"] = _start_vq(args, dsns["other"], workdir / "other", args.other_vq)
    bare_url = f"http://127.0.0.1:{bare_port}/jobs"
    with (workdir / "bare.log").open("w") as log:
        bare_server = subprocess.Popen(
            [
                sys.executable,
                str(args.bare_script),
                "serve",
                "--port",
                str(bare_port),
                "--dsn",
                bare_dsn,
            ],
            stdout=log,
            stderr=log,
        )
    rounds: list[dict[str, Any]] = []
    try:
        _wait_bare(bare_url, bare_server)
        targets = {"bare": (bare_url, "bare")}
        pids = {"bare": bare_server.pid}
        for name, (proc, proc_env, proc_url) in {"vq": (server, env, url), **others}.items():
            wait_ready(proc_url, proc)
            secret = _vq(proc_env, "tokens", "create", "bench", "--role", "operator", "--quiet")
            if args.worker:
                # The bare client's jobs are of a rendering type: the worker drains them
                # through the noop service, not the local renderer.
                _vq(proc_env, "types", "set", bare.BODY["job_type"], "--service", "noop")
            targets[name] = (f"{proc_url}/api/v1/jobs", secret)
            pids[name] = proc.pid
        token = targets["vq"][1]

        def measure(name: str) -> dict[str, Any]:
            # The server's own CPU per request as well: on a shared machine it moves less
            # than requests/s, which also carry the database's commit waits.
            target, secret = targets[name]
            cpu = cpu_seconds(pids[name])
            result: dict[str, Any] = asyncio.run(
                bare.load(target, secret, args.seconds, args.concurrency)
            )
            used = cpu_seconds(pids[name]) - cpu
            result["server_cpu_us_per_request"] = round(used / max(result["requests"], 1) * 1e6)
            return result

        # A short warm-up of each, not recorded: first connections, caches, plans.
        for name in targets:
            asyncio.run(bare.load(targets[name][0], targets[name][1], 2, args.concurrency))
        for r in range(args.rounds):
            # vq first, then the bare API first, ...; the other build in between.
            order = ["vq", *others, "bare"] if r % 2 == 0 else ["bare", *others, "vq"]
            single = {name: measure(name) for name in order}
            batched = asyncio.run(
                _batches(url, token, args.concurrency, args.seconds, args.batch, bare.BODY)
            )
            vq, base = single["vq"], single["bare"]
            round_ = {
                "order": order,
                **single,
                "vq_batched": batched,
                "ratios": {
                    "requests_per_s_vq_over_bare": _ratio(
                        vq["requests_per_s"], base["requests_per_s"]
                    ),
                    "p50_vq_over_bare": _ratio(vq["p50_ms"], base["p50_ms"]),
                    "p99_vq_over_bare": _ratio(vq["p99_ms"], base["p99_ms"]),
                    "server_cpu_per_request_vq_over_bare": _ratio(
                        vq["server_cpu_us_per_request"], base["server_cpu_us_per_request"]
                    ),
                    "batch_jobs_per_s_over_single": _ratio(
                        batched["jobs_per_s"], vq["requests_per_s"]
                    ),
                },
            }
            if "other" in single:
                other = single["other"]
                round_["ratios"] |= {
                    "requests_per_s_vq_over_other": _ratio(
                        vq["requests_per_s"], other["requests_per_s"]
                    ),
                    "p99_vq_over_other": _ratio(vq["p99_ms"], other["p99_ms"]),
                    "server_cpu_per_request_vq_over_other": _ratio(
                        vq["server_cpu_us_per_request"], other["server_cpu_us_per_request"]
                    ),
                    "requests_per_s_other_over_bare": _ratio(
                        other["requests_per_s"], base["requests_per_s"]
                    ),
                    "p99_other_over_bare": _ratio(other["p99_ms"], base["p99_ms"]),
                }
            print(json.dumps(round_["ratios"]), file=sys.stderr, flush=True)
            rounds.append(round_)
    finally:
        procs = [server, bare_server, *(o[0] for o in others.values())]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(60)
    keys = rounds[0]["ratios"].keys()
    median = {
        k: round(statistics.median(r["ratios"][k] for r in rounds if r["ratios"][k] is not None), 3)
        for k in keys
    }
    rps, p99, lead = (
        median["requests_per_s_vq_over_bare"],
        median["p99_vq_over_bare"],
        median["batch_jobs_per_s_over_single"],
    )
    return {
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "worker": args.worker,
        "other_vq": str(args.other_vq) if args.other_vq else None,
        "rounds": rounds,
        "median_ratios": median,
        "targets": {
            "requests_per_s at least 0.8 x bare": {"ratio": rps, "passes": rps >= 0.8},
            "p99 at most 2 x bare": {"ratio": p99, "passes": p99 <= 2.0},
            "batches keep their lead (jobs/s over single)": {"ratio": lead, "passes": lead > 1},
        },
        "errors": sum(
            r[name]["errors"] for r in rounds for name in ("vq", "bare", "vq_batched", *others)
        ),
    }


def main() -> int:
    """Run the benchmark and print its JSON; exit 1 on any failed request."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=DEFAULT_SERVER)
    parser.add_argument("--rounds", type=int, default=5, help="alternating vq/bare rounds")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--worker", action="store_true", help="run vq's worker too")
    parser.add_argument("--bare-script", type=Path, default=BARE_API)
    parser.add_argument("--other-vq", type=Path, help="another vq source tree, measured too")
    args = parser.parse_args()
    suffix = uuid.uuid4().hex[:10]
    names = {"vq": f"vq_bench_api_{suffix}", "bare": f"bare_api_{suffix}"}
    if args.other_vq is not None:
        names["other"] = f"vq_bench_api_other_{suffix}"
    for name in names.values():
        asyncio.run(_admin(args.server, f'CREATE DATABASE "{name}"'))
    try:
        with tempfile.TemporaryDirectory(prefix="vq-bench-api-") as folder:
            base = args.server.rsplit("/", 1)[0]
            dsns = {key: f"{base}/{name}" for key, name in names.items()}
            result = bench(args, dsns, Path(folder))
    finally:
        for name in names.values():
            asyncio.run(_admin(args.server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print(json.dumps(result, indent=2))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
