"""A `vq worker` at its default settings, draining no-op jobs, never imports the web stack
nor httpx (which its plugins, the video check, the callbacks and the webhook sink import
on first use): each is a real process against a real database, reporting at exit which
top-level packages it loaded. (Its memory is load/bench_memory.py's, measured.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.helpers import eventually
from support.import_probe import PROBE

from vq_core.models import NewJob
from vq_core.store import Store

WEB_STACK = {"nicegui", "fastapi", "starlette", "uvicorn"}
# Deferred to first use: an HTTP request (httpx and what it imports with itself).
DEFERRED = {"httpx", "httpcore", "h11"}


@pytest.fixture
def start_worker(dsn: str, tmp_path: Path) -> Iterator[object]:
    procs: list[subprocess.Popen[str]] = []

    def start(preimport: str = "") -> tuple[subprocess.Popen[str], Path]:
        out = tmp_path / f"modules-{len(procs)}.json"
        env = dict(
            os.environ,
            VQ_DATABASE_URL=dsn,
            VQ_DATA_DIR=str(tmp_path),
            VQ_CONFIG="/nonexistent/vq.toml",
            VQ_LOG_LEVEL="WARNING",
            PROBE_OUT=str(out),
            PROBE_PREIMPORT=preimport,
        )
        for name in [k for k in env if k.startswith("OTEL_")]:
            del env[name]  # default settings: no traces
        proc = subprocess.Popen(
            [sys.executable, "-c", PROBE, "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc, out

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


async def drain_and_stop(
    store: Store, proc: subprocess.Popen[str], out: Path, n: int = 20
) -> set[str]:
    """Enqueue ``n`` no-op jobs, wait until the worker completed them, stop it gracefully:
    the packages it had loaded."""
    await store.enqueue_many([NewJob("noop") for _ in range(n)])

    async def done() -> bool:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        stats = await store.stats()
        return bool(stats["by_status"]["completed"] >= n)

    await eventually(done, timeout=60)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    return set(json.loads(out.read_text()))


async def test_a_default_worker_loads_neither_httpx_nor_the_web_stack(
    store: Store, start_worker: object
) -> None:
    proc, out = start_worker()  # type: ignore[operator]
    loaded = await drain_and_stop(store, proc, out)
    assert "vq_plugins" in loaded  # the plugins were loaded: their services ran the jobs
    assert not loaded & WEB_STACK, f"vq worker imported {sorted(loaded & WEB_STACK)}"
    assert not loaded & DEFERRED, f"vq worker imported {sorted(loaded & DEFERRED)}"


async def test_the_report_sees_httpx_when_it_is_loaded(store: Store, start_worker: object) -> None:
    # The same probe, with httpx imported first: the check above can fail.
    proc, out = start_worker(preimport="httpx")  # type: ignore[operator]
    loaded = await drain_and_stop(store, proc, out)
    assert "httpx" in loaded
