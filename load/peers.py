"""The peer job queues (graphile-worker, pg-boss, PgQueuer), run for vq's queue benchmark.

Their benchmark scripts are not part of vq: they live in a prepared copy of
``../shared/bench/peers/`` (``npm ci`` run in it; PgQueuer importable by the Python in
``PEER_PY``), found at run time. Each peer is measured at the settings that folder's
``run.sh`` uses, the best found for it on a 2-core machine. A peer whose setup is missing
is reported as skipped, with the reason, never as an error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PEERS_DIR = ROOT.parent / "shared" / "bench" / "peers"


@dataclass(frozen=True)
class Peer:
    """One peer queue: how to run its benchmark script and what it needs installed."""

    name: str
    runtime: str  # "node" or "python"
    script: str
    database: str
    db_env: str | None  # the variable naming its database, None for the PG* variables
    setup: tuple[str, ...]
    enqueue: tuple[str, ...]
    drain: tuple[str, ...]
    needs_module: str


# The settings of run.sh in the peers folder, measurement for measurement.
PEERS = (
    Peer(
        "graphile-worker",
        "node",
        "bench_graphile.mjs",
        "bench_graphile",
        "GW_DB",
        ("setup",),
        ("enqueue", "--batch", "500"),
        ("drain", "--concurrency", "24", "--pool", "26", "--lq", "1000", "--cjbd", "10"),
        "graphile-worker",
    ),
    Peer(
        "pg-boss",
        "node",
        "bench_pgboss.mjs",
        "bench_pgboss",
        "BOSS_DB",
        ("setup",),
        ("enqueue", "--batch", "500"),
        ("drain", "--batch-size", "500", "--local-concurrency", "2", "--burst", "--window", "60"),
        "pg-boss",
    ),
    Peer(
        "pgqueuer",
        "python",
        "bench_pgqueuer.py",
        "bench_pgqueuer",
        None,
        ("-m", "pgqueuer", "install"),
        ("enqueue", "--batch", "500"),
        ("drain", "--batch-size", "50"),
        "pgqueuer",
    ),
)


def peers_dir(option: str | None) -> Path:
    """The prepared peers folder: the option, else VQ_BENCH_PEERS, else ../shared/bench/peers."""
    return Path(option or os.environ.get("VQ_BENCH_PEERS") or DEFAULT_PEERS_DIR).resolve()


def peer_python() -> str:
    """The Python that runs PgQueuer (PEER_PY, as run.sh reads it)."""
    return os.environ.get("PEER_PY", "python3")


def missing(peer: Peer, folder: Path) -> str | None:
    """Why ``peer`` cannot run from ``folder``, or None when it can."""
    if not (folder / peer.script).is_file():
        return f"{folder / peer.script} not found (--peers-dir or VQ_BENCH_PEERS)"
    if peer.runtime == "node":
        if shutil.which("node") is None:
            return "node is not on PATH"
        if not (folder / "node_modules" / peer.needs_module).is_dir():
            return f"{peer.needs_module} not installed: run `npm ci` in {folder}"
        return None
    python = peer_python()
    if shutil.which(python) is None:
        return f"PEER_PY={python} not found"
    probe = subprocess.run(
        [python, "-c", "import pgqueuer, asyncpg, uvloop"], capture_output=True, check=False
    )
    if probe.returncode:
        return f"pgqueuer, asyncpg or uvloop not importable by PEER_PY={python}"
    return None


def peer_env(peer: Peer, server: str) -> dict[str, str]:
    """The environment that points ``peer``'s script at its database on ``server``."""
    url = urlsplit(server)
    dsn = server.rsplit("/", 1)[0] + "/" + peer.database
    env = dict(
        os.environ,
        PGHOST=url.hostname or "127.0.0.1",
        PGPORT=str(url.port or 5432),
        PGUSER=url.username or "postgres",
        PGDATABASE=peer.database,
    )
    if url.password:
        env["PGPASSWORD"] = url.password
    if peer.db_env:
        env[peer.db_env] = dsn
    return env


def command(peer: Peer, folder: Path, args: tuple[str, ...]) -> list[str]:
    if peer.runtime == "node":
        return ["node", str(folder / peer.script), *args]
    if args and args[0] == "-m":
        return [peer_python(), *args]
    return [peer_python(), str(folder / peer.script), *args]


def last_json(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError("no JSON line in the peer's output")
    return dict(json.loads(lines[-1]))


async def prepare(peer: Peer, folder: Path, server: str) -> None:
    """Create ``peer``'s database if it is missing and install its schema."""
    conn = await asyncpg.connect(server)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", peer.database):
            await conn.execute(f'CREATE DATABASE "{peer.database}"')
    finally:
        await conn.close()
    # Not checked, as run.sh does not: PgQueuer's install fails once its schema exists,
    # and a real failure shows in the measurement that follows.
    subprocess.run(
        command(peer, folder, peer.setup),
        env=peer_env(peer, server),
        cwd=folder,
        capture_output=True,
        check=False,
    )


def measure(peer: Peer, folder: Path, server: str, n: int) -> dict[str, Any]:
    """One batch enqueue of ``n`` no-op jobs, then their drain, as run.sh does them."""
    env = peer_env(peer, server)
    results: dict[str, Any] = {}
    # The drain takes the jobs the enqueue left queued: the order matters.
    for op, args in (("enqueue", peer.enqueue), ("drain", peer.drain)):
        out = subprocess.run(
            command(peer, folder, (*args, "--n", str(n))),
            env=env,
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        ).stdout
        results[op] = last_json(out)
    return results
