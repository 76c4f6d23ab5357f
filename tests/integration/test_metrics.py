"""Prometheus metrics and structured job logs from a real worker on a real database."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from prometheus_client import REGISTRY, generate_latest
from support.helpers import ScriptedService, eventually, running_worker

from vq_core import metrics as queue_metrics
from vq_core.alerts.engine import AlertEngine
from vq_core.config import Settings
from vq_core.errors import ServiceError
from vq_core.logs import JsonFormatter
from vq_core.models import ErrorCategory, JobStatus, NewJob
from vq_core.plugins import make_plugin_manager
from vq_core.store import Store


def sample(name: str, **labels: str) -> float:
    """A sample's value in the default registry (0 when it does not exist yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def finished(store: Store, ids: list[uuid.UUID]) -> bool:
    done = {JobStatus.COMPLETED, JobStatus.FAILED}
    return all([(await store.get_job(i)).status in done for i in ids])


def failing(job: object) -> BaseException | None:
    kind = getattr(job, "payload", {}).get("fail")
    if kind == "input":
        return ServiceError(ErrorCategory.INVALID_INPUT, "no question")
    if kind == "api":
        return ServiceError(ErrorCategory.API_ERROR, "503 from the renderer")
    return None


async def test_counters_and_histograms_after_processing(
    store: Store, settings: Settings, dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A job type of its own: the registry is process-wide, other tests add to it too.
    job_type = f"m{uuid.uuid4().hex[:8]}"
    service = ScriptedService(job_types=(job_type,))
    service.raise_for = failing
    service.gate("go").set()  # "hold" jobs report progress, then go straight on
    pm = make_plugin_manager(
        settings,
        ("vq_plugins.observers.metrics", "vq_plugins.observers.job_log"),
        load_entrypoints=False,
    )
    caplog.set_level(logging.DEBUG, logger="vq.job.events")
    async with running_worker(store, settings, {"scripted": service}, dsn, pm):
        jobs = [NewJob(job_type) for _ in range(3)] + [
            NewJob(job_type, {"hold": "go"}),
            NewJob(job_type, {"fail": "input"}, max_retries=3),
            NewJob(job_type, {"fail": "api"}, max_retries=1),
        ]
        ids = [r.id for r in await store.enqueue_many(jobs)]
        await eventually(lambda: finished(store, ids))

    t = {"job_type": job_type}
    assert sample("vq_jobs_claimed_total", **t) == 7  # 6 jobs, one of them tried twice
    assert sample("vq_jobs_processed_total", **t, outcome="completed") == 4
    assert sample("vq_jobs_processed_total", **t, outcome="failed") == 2
    assert sample("vq_jobs_processed_total", **t, outcome="retry_scheduled") == 1
    assert sample("vq_job_failures_total", **t, category="INVALID_INPUT") == 1
    assert sample("vq_job_failures_total", **t, category="API_ERROR") == 2
    assert sample("vq_job_retries_total", **t) == 1
    assert sample("vq_job_progress_events_total", **t) == 1
    assert sample("vq_job_wait_seconds_count", **t) == 7
    assert sample("vq_job_processing_seconds_count", **t, outcome="completed") == 4
    assert sample("vq_job_processing_seconds_count", **t, outcome="failed") == 2
    assert sample("vq_job_processing_seconds_sum", **t, outcome="completed") >= 0
    inf = sample("vq_job_processing_seconds_bucket", **t, outcome="completed", le="+Inf")
    assert inf == 4

    # The job log tells each job's story with its id on every line.
    bad = ids[5]
    story = [r for r in caplog.records if getattr(r, "job_id", None) == str(bad)]
    assert [r.event for r in story] == [  # type: ignore[attr-defined]
        "claimed",
        "retry_scheduled",
        "claimed",
        "failed",
    ]
    last = json.loads(JsonFormatter().format(story[-1]))
    assert last["job_id"] == str(bad) and last["event"] == "failed"
    assert last["category"] == "API_ERROR" and last["attempt"] == 2
    assert last["job_type"] == job_type and last["level"] == "warning"
    good_events = [
        r.event
        for r in caplog.records  # type: ignore[attr-defined]
        if getattr(r, "job_id", None) == str(ids[3])
    ]
    assert good_events == ["claimed", "progress", "completed"]
    # Routine steps are INFO (followed at the default level); failures are warnings.
    levels = {r.event: r.levelno for r in caplog.records if hasattr(r, "event")}
    assert levels["completed"] == logging.INFO and levels["claimed"] == logging.INFO
    assert levels["retry_scheduled"] == logging.WARNING


async def test_database_gauges(store: Store, settings: Settings) -> None:
    job_type = f"g{uuid.uuid4().hex[:8]}"
    await store.enqueue_many([NewJob(job_type) for _ in range(4)])
    strict = settings.model_copy(
        update={"alerts": settings.alerts.model_copy(update={"depth_thresholds": {job_type: 1}})}
    )
    await AlertEngine(store, strict, []).tick()
    await queue_metrics.refresh(store)
    assert sample("vq_queue_ready_by_type", job_type=job_type) == 4
    assert sample("vq_queue_oldest_wait_seconds_by_type", job_type=job_type) >= 0
    assert sample("vq_alerts_firing", rule="queue_depth") == 1
    assert sample("vq_alerts_firing", rule="worker_stale") == 0
    text = generate_latest(REGISTRY).decode()
    assert f'vq_queue_ready_by_type{{job_type="{job_type}"}} 4.0' in text
