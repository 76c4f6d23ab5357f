"""Prometheus: the one collector of the queue's database-wide gauges, and the exposition
of the default registry that ``/api/v1/metrics`` serves.

The gauges are read from the store at scrape time rather than kept up to date in
memory, so every process reports the same numbers and holds no state. Counters and
histograms of the jobs a process runs come from the ``metrics`` plugin
(``vq_plugins/observers/metrics.py``), which registers them in the same default
registry; they appear beside these.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vq_core.alerts.rules import RULES
from vq_core.models import WorkerInfo
from vq_core.store import Store
from vq_core.store.alerts import QueueReading


@dataclass(frozen=True)
class QueueSnapshot:
    """Everything the gauges show, read in one refresh."""

    stats: dict[str, Any]
    workers: list[WorkerInfo]
    services: list[dict[str, Any]]
    firing: dict[str, int]
    queues: list[QueueReading]


async def read_snapshot(store: Store) -> QueueSnapshot:
    """Read the gauges' numbers from the database."""
    return QueueSnapshot(
        stats=await store.stats(),
        workers=await store.list_workers(),
        services=await store.list_service_health(),
        firing=await store.count_firing_alerts(),
        queues=await store.queue_by_type(),
    )


class QueueCollector(Collector):
    """Yields the gauges of the latest snapshot (nothing before the first refresh)."""

    def __init__(self) -> None:
        self.snapshot: QueueSnapshot | None = None

    def collect(self) -> Iterator[Metric]:
        """The queue gauges of the latest snapshot."""
        snap = self.snapshot
        if snap is None:
            return
        yield from _job_gauges(snap.stats)
        yield from _rate_gauges(snap.stats)
        yield from _fleet_gauges(snap.workers, snap.services)
        yield from _worker_gauges(snap.workers)
        yield from _alert_gauges(snap.firing)
        yield from _type_gauges(snap.queues)


def _job_gauges(stats: dict[str, Any]) -> Iterator[Metric]:
    jobs = GaugeMetricFamily("vq_queue_jobs", "Jobs by status.", labels=["status"])
    for status, n in stats["by_status"].items():
        jobs.add_metric([status], n)
    yield jobs
    by_type = GaugeMetricFamily(
        "vq_queue_jobs_by_type", "Jobs by type and status.", labels=["job_type", "status"]
    )
    for job_type, counts in stats["by_type"].items():
        for status, n in counts.items():
            by_type.add_metric([job_type, status], n)
    yield by_type
    yield GaugeMetricFamily("vq_queue_depth", "Queued jobs ready to run now.", value=stats["depth"])
    oldest = stats["oldest_queued_age_s"]
    yield GaugeMetricFamily(
        "vq_queue_oldest_age_seconds",
        "How long the longest-waiting ready job has waited (0 when none).",
        value=float(oldest or 0.0),
    )


def _rate_gauges(stats: dict[str, Any]) -> Iterator[Metric]:
    per_min = GaugeMetricFamily(
        "vq_queue_throughput_per_minute", "Completed jobs per minute.", labels=["window"]
    )
    success = GaugeMetricFamily(
        "vq_queue_success_ratio", "Completed / finished jobs.", labels=["window"]
    )
    for window, data in stats["throughput"].items():
        per_min.add_metric([window], data["per_minute"])
        if data["success_rate"] is not None:
            success.add_metric([window], data["success_rate"])
    yield per_min
    yield success
    durations = GaugeMetricFamily(
        "vq_queue_duration_seconds", "Processing time of recent jobs.", labels=["stat"]
    )
    for stat, value in stats["duration_s"].items():
        if value is not None:
            durations.add_metric([stat], float(value))
    yield durations


def _fleet_gauges(workers: list[WorkerInfo], services: list[dict[str, Any]]) -> Iterator[Metric]:
    alive = sum(1 for w in workers if not w.stale)
    fleet = GaugeMetricFamily("vq_queue_workers", "Known workers.", labels=["state"])
    fleet.add_metric(["alive"], alive)
    fleet.add_metric(["stale"], len(workers) - alive)
    yield fleet
    up = GaugeMetricFamily(
        "vq_queue_service_up", "Last health check of a video service.", labels=["service"]
    )
    for row in services:
        up.add_metric([row["service"]], 1.0 if row["healthy"] else 0.0)
    yield up


def _worker_gauges(workers: list[WorkerInfo]) -> Iterator[Metric]:
    # Per worker, so that Alertmanager rules can name the worker in trouble (the
    # vq_queue_workers counts cannot). A worker's series ends when it deregisters or
    # is pruned, which resolves its alerts.
    labels = ["worker_id", "hostname"]
    failures = GaugeMetricFamily(
        "vq_worker_consecutive_failures",
        "Attempts in a row that failed through a worker or service fault (a success resets).",
        labels=labels,
    )
    stale = GaugeMetricFamily(
        "vq_worker_stale",
        "1 when a worker sent no heartbeat within its lease, else 0.",
        labels=labels,
    )
    for w in workers:
        failures.add_metric([w.id, w.hostname], w.consecutive_failures)
        stale.add_metric([w.id, w.hostname], 1.0 if w.stale else 0.0)
    yield failures
    yield stale


def _alert_gauges(firing: dict[str, int]) -> Iterator[Metric]:
    gauge = GaugeMetricFamily("vq_alerts_firing", "Alerts firing, by rule.", labels=["rule"])
    for rule in sorted(set(RULES) | set(firing)):
        gauge.add_metric([rule], firing.get(rule, 0))
    yield gauge


def _type_gauges(queues: list[QueueReading]) -> Iterator[Metric]:
    ready = GaugeMetricFamily(
        "vq_queue_ready_by_type", "Queued jobs ready to run now, by type.", labels=["job_type"]
    )
    wait = GaugeMetricFamily(
        "vq_queue_oldest_wait_seconds_by_type",
        "How long the oldest ready job of each type has waited.",
        labels=["job_type"],
    )
    for q in queues:
        ready.add_metric([q.job_type], q.ready)
        wait.add_metric([q.job_type], q.oldest_wait_s or 0.0)
    yield ready
    yield wait


# prometheus-client's registry is process-wide, so the collector is too: several apps
# in one process (tests) share it, each scrape refreshing it first.
_collector = QueueCollector()
_registered = False
_lock = threading.Lock()


def queue_collector() -> QueueCollector:
    """The process's collector, registered in the default registry on first use."""
    global _registered
    with _lock:
        if not _registered:
            REGISTRY.register(_collector)
            _registered = True
    return _collector


async def refresh(store: Store) -> None:
    """Re-read the gauges from the database."""
    snapshot = await read_snapshot(store)
    queue_collector().snapshot = snapshot


async def render_metrics(store: Store) -> bytes:
    """The Prometheus text exposition of the default registry, with fresh gauges."""
    snapshot = await read_snapshot(store)
    # No await between setting the snapshot and rendering: a concurrent scrape cannot
    # interleave, so each answer is internally consistent.
    queue_collector().snapshot = snapshot
    return generate_latest(REGISTRY)
