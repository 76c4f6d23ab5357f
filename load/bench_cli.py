"""vq's command-line benchmark: the wall time of `vq submit`, `vq jobs show` and `vq stats`
beside a bare Python process that connects and inserts one row, on the same database.

Every measurement is a whole process, from fork to exit, as a script calling vq sees it:
- `vq submit doubt --payload '{"question": ...}'`;
- `vq jobs show ID` (a job the benchmark submitted first);
- `vq stats`;
- the baseline: `python -c` that imports asyncpg, connects and inserts one row into a
  scratch table of the same database, then closes (the least a submitting process does).

Each process gets the same environment: the scratch database, no vq.toml, and a
bytecode cache of its own (compiled on the warm-up run, as pip compiles at install).

Usage: python load/bench_cli.py [--server postgresql://postgres@127.0.0.1:5432/postgres]
       [--rounds 15] [--vq-command "python -m vq_core.cli"]
The four run one after another in every round, in an order that rotates round by round,
so each ratio compares runs made moments apart; the ratio of the medians over the rounds
is the headline, with the spread of the per-round ratios beside it. Target: each command
within 2.5 x the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from vq_core import db
from vq_core.db import migrations

TARGET = 2.5
DATABASE = "vq_bench_cli"

# The baseline: what any submitting script must do at least. Plain asyncio, as a script
# would; nothing else imported.
BARE = """
import asyncio, sys
import asyncpg

async def main():
    conn = await asyncpg.connect(sys.argv[1])
    try:
        await conn.execute("INSERT INTO bench_cli_bare (payload) VALUES ($1::jsonb)", '{"q": 1}')
    finally:
        await conn.close()

asyncio.run(main())
"""


def dsn_for(server: str, name: str) -> str:
    return server.rsplit("/", 1)[0] + "/" + name


async def fresh_database(server: str) -> str:
    """A migrated scratch database with the baseline's table."""
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await conn.close()
    dsn = dsn_for(server, DATABASE)
    conn = await db.connect(dsn)
    try:
        await migrations.migrate(conn)
        await conn.execute(
            "CREATE TABLE bench_cli_bare (id bigserial PRIMARY KEY, payload jsonb NOT NULL)"
        )
    finally:
        await conn.close()
    return dsn


def vq_command() -> list[str]:
    """The installed ``vq`` script beside this interpreter, as users run it."""
    script = Path(sys.executable).with_name("vq")
    return [str(script)] if script.exists() else [sys.executable, "-m", "vq_core.cli"]


def environment(dsn: str, pycache: str) -> dict[str, str]:
    """The processes' environment: this database, no vq.toml, and compiled bytecode
    kept (in ``pycache``, not the checkout) as an installed package keeps it, so no run
    pays for compiling vq's modules (PYTHONDONTWRITEBYTECODE would make every one)."""
    env = dict(
        os.environ,
        VQ_DATABASE_URL=dsn,
        VQ_CONFIG="/nonexistent/vq.toml",
        PYTHONPYCACHEPREFIX=pycache,
    )
    for name in (
        "PYTHONDONTWRITEBYTECODE",
        "VQ_LOG_LEVEL",
        "VQ_LOG_JSON",
        "VQ_EVENT_LOOP",
        "OTEL_TRACES_EXPORTER",
        "TRACEPARENT",
    ):
        env.pop(name, None)
    return env


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall time of one process; a failure ends the benchmark with its output."""
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr or done.stdout}")
    return elapsed, done.stdout


def summary(times: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(times), 4),
        "min_s": round(min(times), 4),
        "max_s": round(max(times), 4),
    }


def main(args: argparse.Namespace) -> None:
    """Rotate the four processes round by round; report medians, ratios and spread."""
    dsn = asyncio.run(fresh_database(args.server))
    with tempfile.TemporaryDirectory(prefix="vq-bench-pycache-") as pycache:
        report = measure(args, dsn, environment(dsn, pycache))
    print(json.dumps(report, indent=2))


def measure(args: argparse.Namespace, dsn: str, env: dict[str, str]) -> dict[str, Any]:
    """The rounds themselves; the report as printed."""
    vq = shlex.split(args.vq_command) if args.vq_command else vq_command()
    _, out = timed([*vq, "submit", "doubt", "--payload", '{"question": "first"}'], env)
    job_id = out.split()[0]
    commands: dict[str, list[str]] = {
        "bare": [sys.executable, "-c", BARE, dsn],
        "submit": [*vq, "submit", "doubt", "--payload", '{"question": "why is the sky blue?"}'],
        "jobs_show": [*vq, "jobs", "show", job_id],
        "stats": [*vq, "stats"],
    }
    names = list(commands)
    for name in names:  # one warm-up each: the page cache, the bytecode cache
        timed(commands[name], env)
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            times[name].append(timed(commands[name], env)[0])
    load_after = os.getloadavg()
    bare = statistics.median(times["bare"])
    report: dict[str, Any] = {
        "rounds": args.rounds,
        "vq": " ".join(vq),
        "load_avg_1m": [round(load_before[0], 2), round(load_after[0], 2)],
        "cpus": os.cpu_count(),
        "bare": summary(times["bare"]),
        "commands": {},
    }
    for name in names[1:]:
        per_round = [t / b for t, b in zip(times[name], times["bare"], strict=True)]
        ratio = statistics.median(times[name]) / bare
        report["commands"][name] = {
            **summary(times[name]),
            "ratio": round(ratio, 3),
            "per_round_ratio": {
                "min": round(min(per_round), 3),
                "median": round(statistics.median(per_round), 3),
                "max": round(max(per_round), 3),
            },
            "target": TARGET,
            "pass": ratio <= TARGET,
        }
    report["pass"] = all(c["pass"] for c in report["commands"].values())
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server",
        default=os.environ.get("VQ_BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--rounds", type=int, default=15, help="rotating rounds of the four")
    parser.add_argument(
        "--vq-command",
        help="how to run vq (default: the vq script beside this Python), e.g. to time "
        "another build of it against the same baseline",
    )
    main(parser.parse_args())
