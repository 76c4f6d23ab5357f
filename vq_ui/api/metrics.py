"""``/metrics``: prometheus-client's default registry plus the queue's live gauges.

Gauges come from ``store.stats()`` at scrape time rather than being kept up to
date in memory, so every app instance reports the same database-wide numbers and
holds no state. Other parts of vq (the worker) may register their own counters in
the default registry; they appear here too.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vq_core.store import Store

log = logging.getLogger("vq.ui")
# The built-in ``metrics`` plugin keeps database gauges of its own (alerts firing,
# per-type wait) that must be re-read before each scrape. Looked up by name so the
# web app still serves /metrics on a host without that plugin.
_PLUGIN_REFRESH = ("vq_plugins.observers.metrics", "refresh_queue_gauges")


class QueueCollector(Collector):
    """Yields the gauges of the latest snapshot taken by ``refresh``."""

    def __init__(self) -> None:
        self.snapshot: dict[str, Any] | None = None

    def collect(self) -> Iterator[Metric]:
        """The queue gauges (nothing before the first scrape)."""
        snap = self.snapshot
        if snap is None:
            return
        yield from _job_gauges(snap["stats"])
        yield from _rate_gauges(snap["stats"])
        yield from _fleet_gauges(snap["workers"], snap["services"])


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
        "Age of the oldest queued job (0 when none).",
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


def _fleet_gauges(workers: list[Any], services: list[dict[str, Any]]) -> Iterator[Metric]:
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


# prometheus-client's registry is process-wide, so the collector is too: several
# apps in one process (tests) share it, each scrape refreshing it first.
_collector = QueueCollector()
_registered = False
_lock = threading.Lock()


def _ensure_registered() -> None:
    global _registered
    with _lock:
        if not _registered:
            REGISTRY.register(_collector)
            _registered = True


def _plugin_refresher() -> Callable[[Store], Awaitable[None]] | None:
    module_name, function = _PLUGIN_REFRESH
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    refresher: Callable[[Store], Awaitable[None]] | None = getattr(module, function, None)
    return refresher


async def render_metrics(store: Store) -> bytes:
    """The Prometheus text exposition of the default registry with fresh queue gauges."""
    _ensure_registered()
    refresher = _plugin_refresher()
    if refresher is not None:
        try:
            await refresher(store)
        except Exception as exc:  # a plugin's gauges must not take the scrape down
            log.warning("metrics plugin refresh failed: %s", exc)
    snapshot = {
        "stats": await store.stats(),
        "workers": await store.list_workers(),
        "services": await store.list_service_health(),
    }
    # No await between setting the snapshot and rendering: a concurrent scrape
    # cannot interleave, so each answer is internally consistent.
    _collector.snapshot = snapshot
    return generate_latest(REGISTRY)
