"""``vq run --no-worker``: the web process of a deployment (deploy/, docs/deployment.md)
serves the admin page and API and runs no worker, so a load-balanced web tier takes no
renders while ``vq worker`` processes do them."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.processes import free_port, wait_ready
from support.worker_processes import worker_env

from vq_core.models import NewJob
from vq_core.store import Store

VQ = [sys.executable, "-m", "vq_core.cli"]
pytestmark = pytest.mark.slow


async def test_web_only_process_serves_the_api_and_claims_nothing(
    store: Store, dsn: str, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    (job,) = await store.enqueue_many([NewJob("noop")])
    port = free_port()
    env = worker_env(dsn, tmp_path, VQ_PORT=str(port))
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        web = subprocess.Popen(
            [*VQ, "run", "--no-worker"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    procs.append(web)
    wait_ready(f"http://127.0.0.1:{port}/api/v1/readyz", web, log)
    web.send_signal(signal.SIGTERM)
    assert web.wait(timeout=60) == 0, log.read_text()
    text = log.read_text()
    assert f"vq admin page: http://127.0.0.1:{port}/queue" in text
    # A worker, once its task starts, always logs "worker <id> stopped" on the way out,
    # even when a stop abandons its start-up: its absence means none was started.
    assert not re.search(r"worker \S+ (started|stopped)", text), text
    assert (await store.get_job(job.id)).status == "queued"
    assert await store.pool.fetchval("SELECT count(*) FROM vq.workers") == 0


def test_no_web_and_no_worker_together_are_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [*VQ, "run", "--no-web", "--no-worker"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=worker_env("postgresql://127.0.0.1:1/none", tmp_path),
    )
    assert done.returncode == 2
    assert "--no-web and --no-worker leave nothing to run" in done.stderr
