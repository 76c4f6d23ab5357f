"""``vq run`` on the embedded database, as a process: it stops the server it holds however
it ends, and replaces a server another installation left running on its data directory.

Each test gets a scratch data directory and no ``VQ_DATABASE_URL``, as a new user's first
``vq run`` has.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from support.embedded import (
    postmaster_pid,
    start_from_another_installation,
    wait_gone,
    wait_no_postgres,
)
from support.helpers import eventually
from support.processes import free_port, wait_ready

from vq_core import db
from vq_core.db import migrations
from vq_core.db.embedded import EmbeddedError, embedded_dsn, stop_embedded
from vq_core.models import FINAL_STATUSES, Job, JobStatus
from vq_core.store import Store

VQ = [sys.executable, "-m", "vq_core.cli"]
pytestmark = [pytest.mark.embedded, pytest.mark.slow]


def _env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VQ_DATABASE_URL"}
    env.update(
        VQ_CONFIG=str(data_dir.parent / "absent.toml"),
        VQ_DATA_DIR=str(data_dir),
        VQ_PORT=str(port),
        VQ_POLL_INTERVAL="0.5",
    )
    return env


@contextlib.contextmanager
def _vq_run(data_dir: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``vq run`` as a process; whatever happens, nothing of it is left running after."""
    with log.open("wb") as out:
        run = subprocess.Popen(
            [*VQ, "run"], env=_env(data_dir, port), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield run
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(30)
        with contextlib.suppress(EmbeddedError):
            stop_embedded(data_dir)


def _assert_clean(output: str) -> None:
    assert "Traceback" not in output, output


def _assert_says_where_its_data_lives(output: str, data_dir: Path) -> None:
    """vq run prints its data directory, the embedded server's pgdata and DSN, its media."""
    data_dir = data_dir.resolve()
    pgdata = data_dir / "pgdata"
    assert f"vq data: {data_dir}\n" in output, output
    # The data directory here is short enough for the socket to live in pgdata itself.
    dsn = f"postgresql://postgres@/vq?host={pgdata}&port=5432"
    assert f"vq database: embedded PostgreSQL in {pgdata} ({dsn})\n" in output, output
    assert f"vq media: {data_dir / 'media'}\n" in output, output


def _processes_naming(data_dir: Path) -> list[psutil.Process]:
    """Live processes whose command line names ``data_dir`` (or a path under it)."""
    found = []
    for proc in psutil.process_iter(attrs=("cmdline", "status")):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(data_dir) in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_vq_run_stops_its_embedded_server_on_a_signal(
    embedded_tmp: Path, sig: signal.Signals
) -> None:
    data_dir = embedded_tmp / "data"
    port, log = free_port(), embedded_tmp / "vq-run.log"
    with _vq_run(data_dir, port, log) as run:
        wait_ready(f"http://127.0.0.1:{port}/api/v1/readyz", run, log, timeout=120)
        _assert_says_where_its_data_lives(log.read_text(), data_dir)
        pid = postmaster_pid(data_dir / "pgdata")
        # The postmaster's children too (checkpointer, walwriter, the pool's backends).
        children = [p.pid for p in psutil.Process(pid).children(recursive=True)]
        assert children
        run.send_signal(sig)
        assert run.wait(90) == 0, log.read_text()
        # Checked before _vq_run's clean-up stops whatever is left.
        assert wait_gone(pid), f"PostgreSQL {pid} outlived vq run: {log.read_text()}"
        assert [c for c in children if not wait_gone(c)] == []
        assert wait_no_postgres(data_dir / "pgdata") == []
        assert _processes_naming(data_dir) == []
        assert not (data_dir / "pgdata" / "postmaster.pid").exists()
    _assert_clean(log.read_text())


def test_vq_run_that_fails_to_start_stops_its_embedded_server(embedded_tmp: Path) -> None:
    data_dir = embedded_tmp / "data"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        try:
            # The database starts and migrates; then the admin page cannot have its port.
            run = subprocess.run(
                [*VQ, "run"],
                env=_env(data_dir, port),
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            left = wait_no_postgres(data_dir / "pgdata")
        finally:
            with contextlib.suppress(EmbeddedError):
                stop_embedded(data_dir)
    assert run.returncode == 2, run.stderr
    assert (
        run.stderr.strip()
        .splitlines()[-1]
        .startswith(f"Error: port: cannot listen on 127.0.0.1:{port}")
    )
    _assert_clean(run.stdout + run.stderr)
    assert (data_dir / "pgdata" / "PG_VERSION").exists()  # the server had been started
    assert left == []


async def _create_and_migrate(pgdata: Path) -> None:
    """What the other installation's vq run did: create the vq database and migrate it."""
    server = f"postgresql://postgres@/postgres?host={pgdata}"
    conn = await db.connect(server)
    try:
        await conn.execute('CREATE DATABASE "vq"')
    finally:
        await conn.close()
    conn = await db.connect(f"postgresql://postgres@/vq?host={pgdata}")
    try:
        await migrations.migrate(conn)
    finally:
        await conn.close()


async def test_vq_run_replaces_a_server_whose_binaries_are_gone(embedded_tmp: Path) -> None:
    data_dir = embedded_tmp / "data"
    pgdata = data_dir / "pgdata"
    port, log = free_port(), embedded_tmp / "vq-run.log"
    site = embedded_tmp / "old-venv"
    old = start_from_another_installation(pgdata, site)
    try:
        await _create_and_migrate(pgdata)
    except BaseException:
        stop_embedded(data_dir)
        raise
    shutil.rmtree(site)  # that installation's .venv is deleted; its server runs on
    with _vq_run(data_dir, port, log) as run:
        wait_ready(f"http://127.0.0.1:{port}/api/v1/readyz", run, log, timeout=120)

        submitted = subprocess.run(
            [*VQ, "submit", "noop", "--json", "--payload", json.dumps({"result": {"ok": 1}})],
            env=_env(data_dir, port),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert submitted.returncode == 0, submitted.stderr  # was: could not access "plpgsql"
        job_id = uuid.UUID(json.loads(submitted.stdout)["id"])
        assert wait_gone(old.pid), log.read_text()

        pool = await db.create_pool(await asyncio.to_thread(embedded_dsn, data_dir), 1, 2)
        store = Store(pool)
        try:

            async def finished() -> Job | None:
                job = await store.get_job(job_id)
                return job if job.status in FINAL_STATUSES else None

            job = await eventually(finished, timeout=60)
        finally:
            await store.close()
        assert job.status is JobStatus.COMPLETED, job.error
        assert job.result == {"ok": 1}

        run.send_signal(signal.SIGTERM)
        assert run.wait(90) == 0, log.read_text()
    _assert_clean(log.read_text())


def test_vq_run_refuses_a_server_another_installation_still_uses(embedded_tmp: Path) -> None:
    data_dir = embedded_tmp / "data"
    pgdata = data_dir / "pgdata"
    other = start_from_another_installation(pgdata, embedded_tmp / "other-venv")
    # That installation's vq run holds the server the way hold_embedded does.
    fd = os.open(data_dir / ".holders", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        run = subprocess.run(
            [*VQ, "run"],
            env=_env(data_dir, free_port()),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert run.returncode == 1, run.stdout + run.stderr
        last = run.stderr.strip().splitlines()[-1]
        assert last.startswith(f"Error: the embedded PostgreSQL on {pgdata} (pid {other.pid})")
        assert "VQ_DATA_DIR" in last
        _assert_clean(run.stdout + run.stderr)
        assert other.is_running()  # left alone for the installation that uses it
        assert postmaster_pid(pgdata) == other.pid
    finally:
        os.close(fd)
        with contextlib.suppress(EmbeddedError):
            stop_embedded(data_dir)
