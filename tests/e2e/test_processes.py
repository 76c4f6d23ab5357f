"""Real `vq worker` processes: exactly-once over thousands of jobs, and SIGKILL recovery."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from support.helpers import eventually
from support.worker_processes import start_worker, worker_env, worker_logs

from vq_core.models import NewJob
from vq_core.store import Store

pytestmark = pytest.mark.slow


async def test_several_workers_execute_each_job_exactly_once(
    store: Store, dsn: str, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    n = 3000
    env = worker_env(dsn, tmp_path)
    procs += [start_worker(env, "--plugin", "slow_plugin", "--concurrency", "20") for _ in range(3)]

    async def all_registered() -> bool:
        return len(await store.list_workers()) == 3

    # All up before the jobs arrive: a worker that is first alone drains a burst of
    # fast jobs (prefetch) before the others have started.
    await eventually(all_registered, timeout=60, interval=0.1)
    await store.enqueue_many([NewJob("noop", {"i": i}) for i in range(n)])

    async def all_done() -> bool:
        return (
            await store.pool.fetchval("SELECT count(*) FROM vq.jobs WHERE status = 'completed'")
            == n
        )

    await eventually(all_done, timeout=120, interval=0.2)
    per_job = await store.pool.fetch(
        "SELECT job_id, count(*) FILTER (WHERE event = 'claimed') AS claims,"
        " count(*) FILTER (WHERE event = 'completed') AS completions"
        " FROM vq.job_events GROUP BY job_id"
    )
    assert len(per_job) == n
    assert all(r["claims"] == 1 and r["completions"] == 1 for r in per_job)
    workers = await store.pool.fetchval(
        "SELECT count(DISTINCT worker_id) FROM vq.jobs WHERE status = 'completed'"
    )
    assert workers >= 2  # the work was shared
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        assert p.wait(timeout=60) == 0, worker_logs(tmp_path)


async def test_killed_worker_jobs_run_again_after_lease_expiry(
    store: Store, dsn: str, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    ids = [r.id for r in await store.enqueue_many([NewJob("slow") for _ in range(3)])]
    doomed = start_worker(
        worker_env(dsn, tmp_path, VQ_TEST_SLOW_SECONDS="3600", VQ_LEASE_SECONDS="2"),
        "--plugin",
        "slow_plugin",
    )
    procs.append(doomed)

    async def all_running() -> bool:
        return (
            await store.pool.fetchval("SELECT count(*) FROM vq.jobs WHERE status = 'running'") == 3
        )

    await eventually(all_running, timeout=30)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)
    procs.append(
        start_worker(worker_env(dsn, tmp_path, VQ_TEST_SLOW_SECONDS="0"), "--plugin", "slow_plugin")
    )

    async def all_completed() -> bool:
        return (
            await store.pool.fetchval("SELECT count(*) FROM vq.jobs WHERE status = 'completed'")
            == 3
        )

    await eventually(all_completed, timeout=60, interval=0.1)
    for job_id in ids:
        events = [e.event for e in await store.get_events(job_id)]
        assert events.count("claimed") == 2 and "lease_expired" in events
        job = await store.get_job(job_id)
        assert job.result is not None and job.result["pid"] != doomed.pid
