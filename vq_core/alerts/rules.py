"""The alert rules: pure functions from a snapshot of the queue to the alerts that hold now.

Each rule yields a ``Finding`` per thing in trouble, keyed so that the same
trouble keeps the same key from one evaluation to the next ("queue_depth:doubt",
"worker_failures:<worker id>"). A key that stops being found is resolved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from vq_core.config import AlertSettings
from vq_core.store.alerts import QueueSnapshot


@dataclass(frozen=True)
class Finding:
    """An alert condition that holds now."""

    key: str
    rule: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


Rule = Callable[[QueueSnapshot, AlertSettings], Iterator[Finding]]


def queue_depth(snap: QueueSnapshot, cfg: AlertSettings) -> Iterator[Finding]:
    """More jobs of a type ready to run than its threshold (default 20)."""
    for q in snap.queues:
        limit = cfg.depth_thresholds.get(q.job_type, cfg.queue_depth)
        if q.ready <= limit:
            continue
        config = snap.queue_config.get(q.job_type)
        paused = bool(config and config.paused)
        yield Finding(
            f"queue_depth:{q.job_type}",
            "queue_depth",
            f"{q.ready} {q.job_type} jobs ready in the queue (threshold {limit})"
            + ("; this type is paused" if paused else ""),
            {
                "job_type": q.job_type,
                "ready": q.ready,
                "queued": q.queued,
                "threshold": limit,
                "paused": paused,
            },
        )


def oldest_queued(snap: QueueSnapshot, cfg: AlertSettings) -> Iterator[Finding]:
    """A job ready to run has waited longer than the limit (scheduled waits do not count)."""
    for q in snap.queues:
        wait = q.oldest_wait_s
        if wait is None or wait <= cfg.oldest_queued_s:
            continue
        yield Finding(
            f"oldest_queued:{q.job_type}",
            "oldest_queued",
            f"the oldest ready {q.job_type} job has waited {wait:.0f}s "
            f"(limit {cfg.oldest_queued_s:.0f}s)",
            {
                "job_type": q.job_type,
                "oldest_wait_s": round(wait, 1),
                "limit_s": cfg.oldest_queued_s,
                "ready": q.ready,
            },
        )


def worker_failures(snap: QueueSnapshot, cfg: AlertSettings) -> Iterator[Finding]:
    """A worker whose last N attempts all failed through a worker or service fault (a
    success resets its count). The store leaves ``INVALID_INPUT`` and ``CANCELLED``
    failures out of the count (``Store.fail``): a student's bad payload is not the
    worker's fault."""
    for w in snap.workers:
        if w.consecutive_failures < cfg.worker_failures:
            continue
        yield Finding(
            f"worker_failures:{w.id}",
            "worker_failures",
            f"worker {w.id} failed {w.consecutive_failures} jobs in a row "
            f"(threshold {cfg.worker_failures})",
            {
                "worker_id": w.id,
                "hostname": w.hostname,
                "pid": w.pid,
                "consecutive_failures": w.consecutive_failures,
                "threshold": cfg.worker_failures,
                "jobs_failed": w.jobs_failed,
                "jobs_completed": w.jobs_completed,
            },
        )


def worker_stale(snap: QueueSnapshot, cfg: AlertSettings) -> Iterator[Finding]:
    """A registered worker with no heartbeat within its lease (it died or hangs)."""
    for w in snap.workers:
        if not w.stale:
            continue
        silent = (snap.now - w.last_heartbeat).total_seconds()
        yield Finding(
            f"worker_stale:{w.id}",
            "worker_stale",
            f"worker {w.id} on {w.hostname} sent no heartbeat for {silent:.0f}s "
            f"(lease {w.lease_seconds:.0f}s)",
            {
                "worker_id": w.id,
                "hostname": w.hostname,
                "pid": w.pid,
                "last_heartbeat": w.last_heartbeat.isoformat(),
                "silent_s": round(silent, 1),
                "lease_seconds": w.lease_seconds,
                "jobs_in_flight": w.jobs_in_flight,
            },
        )


def service_unhealthy(snap: QueueSnapshot, cfg: AlertSettings) -> Iterator[Finding]:
    """A video service whose last health check failed: its job types are not claimed."""
    for s in snap.services:
        if s["healthy"]:
            continue
        types = list(s.get("job_types") or [])
        yield Finding(
            f"service_unhealthy:{s['service']}",
            "service_unhealthy",
            f"video service {s['service']} fails its health check"
            + (f" ({s['detail']})" if s.get("detail") else "")
            + (f"; {', '.join(types)} jobs wait in the queue" if types else ""),
            {
                "service": s["service"],
                "detail": s.get("detail"),
                "job_types": types,
                "checked_at": s["checked_at"].isoformat(),
                "down_since": s["changed_at"].isoformat(),
            },
        )


def failure_rate(snap: QueueSnapshot, cfg: AlertSettings) -> Iterator[Finding]:
    """Too many jobs of a type failed for good within the window (needs a minimum sample)."""
    for o in snap.outcomes:
        finished = o.completed + o.failed
        if finished < cfg.failure_min_jobs:
            continue
        rate = o.failed / finished
        if rate <= cfg.failure_rate:
            continue
        minutes = cfg.failure_window_s / 60
        yield Finding(
            f"failure_rate:{o.job_type}",
            "failure_rate",
            f"{o.failed} of {finished} {o.job_type} jobs failed in the last {minutes:g} min "
            f"({rate:.0%}, limit {cfg.failure_rate:.0%})",
            {
                "job_type": o.job_type,
                "failed": o.failed,
                "completed": o.completed,
                "rate": round(rate, 4),
                "limit": cfg.failure_rate,
                "window_s": cfg.failure_window_s,
            },
        )


RULES: dict[str, Rule] = {
    "queue_depth": queue_depth,
    "oldest_queued": oldest_queued,
    "worker_failures": worker_failures,
    "worker_stale": worker_stale,
    "service_unhealthy": service_unhealthy,
    "failure_rate": failure_rate,
}
