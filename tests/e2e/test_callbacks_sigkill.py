"""A completion callback is never lost: a `vq worker` SIGKILLed right after its
completion commit (a test plugin kills it from the `vq_job_event` hook, which runs
after the commit) leaves the outbox row, and another `vq worker` process delivers it,
signed, exactly once."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.alert_receivers import HttpReceiver, http_receiver
from support.helpers import eventually
from support.worker_processes import start_worker, worker_env

from vq_core.models import NewJob
from vq_core.store import Store

pytestmark = pytest.mark.slow
SECRET = "e2e-callback-secret"


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    async with http_receiver() as r:
        yield r


async def test_a_worker_killed_after_its_completion_commit_still_gets_the_callback_sent(
    store: Store,
    dsn: str,
    tmp_path: Path,
    procs: list[subprocess.Popen[bytes]],
    receiver: HttpReceiver,
) -> None:
    env = worker_env(
        dsn,
        tmp_path,
        VQ_CALLBACKS__SECRET=SECRET,
        VQ_CALLBACKS__ALLOWED_ORIGINS=json.dumps([receiver.url]),
        VQ_CALLBACKS__INTERVAL="0.5",
    )
    doomed = start_worker(
        {**env, "VQ_TEST_KILL_AFTER_COMPLETE": "1"},
        *("--plugin", "slow_plugin", "--plugin", "kill_after_complete_plugin"),
    )
    procs.append(doomed)

    async def registered() -> bool:
        return len(await store.list_workers()) == 1

    await eventually(registered, timeout=60, interval=0.1)
    job = await store.enqueue(NewJob("slow", {"n": 1}, callback_url=receiver.url + "/hook"))

    async def died() -> int | None:
        return doomed.poll()

    assert await eventually(died, timeout=60, interval=0.05) == -9
    assert (await store.get_job(job.id)).status.value == "completed"
    [pending] = await store.job_callbacks(job.id)
    assert pending.state == "pending" and pending.attempt_log == []

    rescuer = start_worker(env, "--plugin", "slow_plugin")
    procs.append(rescuer)

    async def delivered() -> bool:
        return (await store.job_callbacks(job.id))[0].state == "delivered"

    await eventually(delivered, timeout=60, interval=0.1)
    [d] = await store.job_callbacks(job.id)
    [attempt] = d.attempt_log
    # Sent by the other process (worker ids are host-pid-suffix).
    assert f"-{rescuer.pid}-" in (attempt.worker_id or "")
    [request] = [r for r in receiver.requests if r.method == "POST"]
    assert request.path == "/hook"
    assert request.headers["x-vq-delivery"] == str(d.id)
    message = request.headers["x-vq-timestamp"].encode() + b"." + request.body
    expected = "sha256=" + hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-vq-signature"], expected)
    body = request.json()
    assert (body["id"], body["status"]) == (str(job.id), "completed")
    assert body["result"] == {"pid": doomed.pid}
