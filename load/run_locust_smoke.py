"""``tox -e load``: a short headless locust run against a real ``vq run``; fails on any error.

Creates a scratch database on the server, starts ``vq run`` on a free loopback port,
creates an operator token with ``vq tokens create``, runs ``load/locustfile.py``
headless, prints the per-route summary (requests, failures, req/s, p50, p95), stops
the server, drops the database. Exit 0 only if locust saw requests and no failure,
and ``vq run`` stopped cleanly.

Usage: python load/run_locust_smoke.py [--server postgresql://postgres@127.0.0.1:5432/postgres]
       [--users 10] [--spawn-rate 5] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

HERE = Path(__file__).resolve().parent
VQ = [sys.executable, "-m", "vq_core.cli"]
DEFAULT_SERVER = os.environ.get(
    "VQ_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _admin(server: str, statement: str) -> None:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"vq run exited early with code {proc.returncode}")
        try:
            if httpx.get(f"{url}/api/v1/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # polling a starting server, bounded by the deadline
    raise SystemExit(f"{url} not ready within {timeout}s")


def summarise(stats_csv: Path) -> tuple[int, int]:
    """Print the per-route table; return (requests, failures) of the aggregate row."""
    total = failures = 0
    with stats_csv.open(newline="") as f:
        for row in csv.DictReader(f):
            print(
                f"{row['Type']:<6} {row['Name']:<32} {row['Request Count']:>7} req "
                f"{row['Failure Count']:>4} fail {float(row['Requests/s']):>8.1f} req/s "
                f"p50 {row['50%']:>5} ms  p95 {row['95%']:>5} ms"
            )
            if row["Name"] == "Aggregated":
                total, failures = int(row["Request Count"]), int(row["Failure Count"])
    return total, failures


def run_locust(url: str, token: str, args: argparse.Namespace, prefix: Path) -> int:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(HERE / "locustfile.py"),
        "--headless",
        "-u",
        str(args.users),
        "-r",
        str(args.spawn_rate),
        "-t",
        f"{args.seconds}s",
        "--host",
        url,
        "--only-summary",
        "--csv",
        str(prefix),
        "--exit-code-on-error",
        "1",
        "--loglevel",
        "WARNING",
    ]
    env = {**os.environ, "VQ_TOKEN": token}
    return subprocess.run(command, env=env, check=False, timeout=args.seconds + 120).returncode


def smoke(args: argparse.Namespace, dsn: str, workdir: Path) -> int:
    port = free_port()
    config = workdir / "vq.toml"
    config.write_text(
        f'database_url = "{dsn}"\ndata_dir = "{workdir / "data"}"\nport = {port}\n',
        encoding="utf-8",
    )
    env = {**os.environ, "VQ_CONFIG": str(config)}
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "vq-run.log"
    with log_path.open("w") as log:  # per-job event lines would drown locust's summary
        server = subprocess.Popen([*VQ, "run"], env=env, stdout=log, stderr=log)
    try:
        wait_ready(url, server)
        made = subprocess.run(
            [*VQ, "tokens", "create", "load", "--role", "operator", "--quiet"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        code = run_locust(url, made.stdout.strip(), args, workdir / "locust")
    finally:
        server.send_signal(signal.SIGTERM)
        stopped = server.wait(60)
    total, failures = summarise(workdir / "locust_stats.csv")
    print(f"locust exit {code}; {total} requests, {failures} failures; vq run exit {stopped}")
    ok = code == 0 and total > 0 and failures == 0 and stopped == 0
    if not ok:
        print("last lines of vq run's log:", *log_path.read_text().splitlines()[-40:], sep="\n")
    return 0 if ok else 1


def main() -> int:
    """Run the smoke test and return the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=DEFAULT_SERVER, help="a DSN with CREATEDB rights")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--spawn-rate", type=float, default=5)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    name = f"vq_load_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(args.server, f'CREATE DATABASE "{name}"'))
    try:
        with tempfile.TemporaryDirectory(prefix="vq-load-") as folder:
            dsn = args.server.rsplit("/", 1)[0] + "/" + name
            return smoke(args, dsn, Path(folder))
    finally:
        asyncio.run(_admin(args.server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    sys.exit(main())
