"""Real `vq worker` processes for the process tests: their environment, their start,
their logs (read when a test fails). The ``procs`` fixture of tests/e2e/conftest.py
kills whatever a test left running."""

from __future__ import annotations

import os
import subprocess
import sys
from itertools import count
from pathlib import Path

#: The test plugins (slow_plugin, kill_after_complete_plugin, ...), importable by name.
PLUGINS = str(Path(__file__).resolve().parent / "plugins")
_counter = count()


def worker_env(dsn: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a worker on ``dsn`` with short poll, lease-recovery and
    heartbeat intervals, the test plugins importable; ``extra`` adds or overrides."""
    env = dict(os.environ)
    env.update(
        VQ_DATABASE_URL=dsn,
        VQ_DATA_DIR=str(tmp_path / "data"),
        VQ_POLL_INTERVAL="0.5",
        VQ_LEASE_RECOVERY_INTERVAL="0.5",
        VQ_HEARTBEAT_INTERVAL="0.5",
        PYTHONPATH=os.pathsep.join([PLUGINS, env.get("PYTHONPATH", "")]),
    )
    env.update(extra)
    return env


def start_worker(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """``vq worker *args``, its log in a file of ``logs/`` beside its data dir."""
    logs = Path(env["VQ_DATA_DIR"]).parent / "logs"
    logs.mkdir(exist_ok=True)
    with (logs / f"worker-{next(_counter)}.log").open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "vq_core.cli", "worker", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


def worker_logs(tmp_path: Path) -> str:
    """Every worker's log under ``tmp_path``, for a failure's message."""
    return "\n".join(p.read_text() for p in sorted((tmp_path / "logs").glob("*.log")))
