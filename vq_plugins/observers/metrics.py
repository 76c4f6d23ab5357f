"""The ``metrics`` plugin: Prometheus counters and histograms of the jobs this process runs.

They live in prometheus-client's default registry, fed by ``vq_job_event``, and
describe this process's worker (each worker process has its own, as usual with
Prometheus: scrape each, or sum them). The database-wide gauges are not here: the
core's one collector (``vq_core/metrics.py``) reads them at scrape time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Histogram

from vq_core import hookimpl

# Renders take from seconds to ten minutes; no-op jobs take milliseconds.
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 3600)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600, 7200)
OUTCOMES = {"completed", "failed", "retry_scheduled", "cancelled", "released"}

JOBS_CLAIMED = Counter("vq_jobs_claimed", "Jobs claimed by this process.", ["job_type"])
JOBS_PROCESSED = Counter(
    "vq_jobs_processed",
    "Attempts that ended in this process, by outcome "
    "(completed, failed, retry_scheduled, cancelled, released).",
    ["job_type", "outcome"],
)
PROCESSING_SECONDS = Histogram(
    "vq_job_processing_seconds",
    "Time from claim to the end of an attempt.",
    ["job_type", "outcome"],
    buckets=DURATION_BUCKETS,
)
WAIT_SECONDS = Histogram(
    "vq_job_wait_seconds",
    "Time from submission to claim.",
    ["job_type"],
    buckets=WAIT_BUCKETS,
)
FAILURES = Counter(
    "vq_job_failures", "Failed attempts by error category.", ["job_type", "category"]
)
RETRIES = Counter("vq_job_retries", "Retries scheduled after a failed attempt.", ["job_type"])
PROGRESS = Counter("vq_job_progress_events", "Progress reports stored.", ["job_type"])
VERIFIED = Counter("vq_videos_verified", "Result videos that passed verification.", ["job_type"])

# labels() takes a lock and validates on every call, and the hook fires twice per
# job: each (event, job type) gets a handler once, holding its metric children's
# bound methods, so an event costs a dict lookup and the counts themselves.
Handler = Callable[[dict[str, Any]], None]
_handlers: dict[tuple[str, str], Handler] = {}


def _claimed(job_type: str) -> Handler:
    claimed, waited = JOBS_CLAIMED.labels(job_type).inc, WAIT_SECONDS.labels(job_type).observe

    def handle(details: dict[str, Any]) -> None:
        claimed()
        wait = details.get("wait_s")
        if wait is not None:
            waited(float(wait))

    return handle


def _ended(job_type: str, outcome: str) -> Handler:
    counted = JOBS_PROCESSED.labels(job_type, outcome).inc
    timed = (
        PROCESSING_SECONDS.labels(job_type, outcome).observe
        if outcome in {"completed", "failed", "retry_scheduled"}
        else None
    )
    failed = outcome in {"failed", "retry_scheduled"}
    retried = RETRIES.labels(job_type).inc if outcome == "retry_scheduled" else None

    def handle(details: dict[str, Any]) -> None:
        counted()
        duration = details.get("duration_s")
        if timed is not None and duration is not None:
            timed(float(duration))
        if failed:
            category = str(details.get("category") or "UNKNOWN")
            FAILURES.labels(job_type, category).inc()  # categories: a handful, rarely
        if retried is not None:
            retried()

    return handle


def _counted(metric: Counter, job_type: str) -> Handler:
    inc = metric.labels(job_type).inc
    return lambda details: inc()


def _ignored(details: dict[str, Any]) -> None:
    return None


def _handler_for(event: str, job_type: str) -> Handler:
    if event == "claimed":
        return _claimed(job_type)
    if event in OUTCOMES:
        return _ended(job_type, event)
    if event == "progress":
        return _counted(PROGRESS, job_type)
    if event == "verified":
        return _counted(VERIFIED, job_type)
    return _ignored


@hookimpl
def vq_job_event(job_id: uuid.UUID, event: str, details: dict[str, Any]) -> None:
    """Count and time the event (the worker puts job_type and durations in details)."""
    key = (event, str(details.get("job_type") or "unknown"))
    handler = _handlers.get(key)
    if handler is None:
        handler = _handlers[key] = _handler_for(*key)
    handler(details)
