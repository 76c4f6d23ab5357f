"""The per-worker gauges the Prometheus rules alert on (deploy/prometheus/vq-rules.yml):
a worker's failures in a row and whether it went stale, read from real worker rows."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY, generate_latest

from vq_core import metrics as queue_metrics
from vq_core.models import NewJob
from vq_core.store import Store


def worker_sample(name: str, worker_id: str) -> float | None:
    """The gauge's value for the worker on host "h" (None when it has no series)."""
    return REGISTRY.get_sample_value(name, {"worker_id": worker_id, "hostname": "h"})


async def test_consecutive_failures_and_staleness_per_worker(store: Store) -> None:
    failing, silent = f"w-{uuid.uuid4().hex[:8]}", f"w-{uuid.uuid4().hex[:8]}"
    await store.register_worker(failing, "h", 1, 4, ["t"], 30.0)
    await store.register_worker(silent, "h", 2, 4, ["t"], 2.0)
    ids = [r.id for r in await store.enqueue_many([NewJob("t") for _ in range(4)])]
    await store.claim(failing, {"t": "noop"}, 4, 30)
    for job_id in ids[:3]:
        await store.fail(failing, job_id, {"message": "x"}, None)

    await queue_metrics.refresh(store)
    assert worker_sample("vq_worker_consecutive_failures", failing) == 3
    assert worker_sample("vq_worker_consecutive_failures", silent) == 0
    assert worker_sample("vq_worker_stale", failing) == 0
    assert worker_sample("vq_worker_stale", silent) == 0

    await store.pool.execute(
        "UPDATE vq.workers SET last_heartbeat = now() - interval '10 seconds' WHERE id = $1",
        silent,
    )
    await store.complete_many(failing, [(ids[3], {})])  # a success ends the streak
    await queue_metrics.refresh(store)
    assert worker_sample("vq_worker_consecutive_failures", failing) == 0
    assert worker_sample("vq_worker_stale", silent) == 1
    assert worker_sample("vq_worker_stale", failing) == 0
    text = generate_latest(REGISTRY).decode()
    assert f'vq_worker_stale{{hostname="h",worker_id="{silent}"}} 1.0' in text

    await store.deregister_worker(silent)  # a worker that left has no series any more
    await queue_metrics.refresh(store)
    assert worker_sample("vq_worker_stale", silent) is None
