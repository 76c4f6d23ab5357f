"""The ``metrics`` plugin: Prometheus counters and histograms of the jobs this process runs.

They describe this process's worker (each worker process has its own, as usual with
Prometheus: scrape each, or sum them), fed by ``vq_job_event`` and exposed through
prometheus-client's default registry. The database-wide gauges are not here: the
core's one collector (``vq_core/metrics.py``) reads them at scrape time.

The hook fires twice per job, thousands of times a second in a drain of short jobs,
and prometheus-client's ``Counter.inc`` and ``Histogram.observe`` take a lock and walk
the buckets in Python on every call (about 1 and 3 µs): a fifth of the worker's CPU
per job. So the counts are plain numbers updated on the event loop, and one collector
turns them into the same metric families when Prometheus scrapes. A scrape from the
exporter's thread reads a copy; a histogram's count is the sum of its buckets, so the
two always agree.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from vq_core import hookimpl

# Renders take from seconds to ten minutes; no-op jobs take milliseconds.
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 3600)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600, 7200)
OUTCOMES = {"completed", "failed", "retry_scheduled", "cancelled", "released"}


class Count:
    """One counter series."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self) -> None:
        """Add one."""
        self.value += 1


class Observations:
    """One histogram series: a count per bucket (the last one is +Inf) and the sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count ``value`` in the first bucket whose upper bound it does not exceed."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value


class Family:
    """A metric's series by label values, and how to expose them."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: tuple[str, ...],
        buckets: tuple[float, ...] | None = None,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.buckets = buckets
        # The "le" labels as prometheus-client writes them ("1.0", "+Inf").
        bounds = (*buckets, float("inf")) if buckets is not None else ()
        self.le = [floatToGoString(b) for b in bounds]  # type: ignore[no-untyped-call]
        self.series: dict[tuple[str, ...], Any] = {}

    def child(self, *values: str) -> Any:
        """The series of these label values (``Count`` or ``Observations``)."""
        found = self.series.get(values)
        if found is None:
            found = Count() if self.buckets is None else Observations(self.buckets)
            self.series[values] = found
        return found

    def metric(self) -> Metric:
        """The family as prometheus-client exposes it."""
        series = self.series.copy()  # one C-level copy: the loop may add a series meanwhile
        if self.buckets is None:
            counter = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
            for values, count in series.items():
                counter.add_metric(values, count.value)
            return counter
        histogram = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, obs in series.items():
            counts, total = list(obs.counts), obs.total
            cumulative, buckets = 0, []
            for le, n in zip(self.le, counts, strict=True):
                cumulative += n
                buckets.append((le, cumulative))
            histogram.add_metric(values, buckets, total)
        return histogram


JOBS_CLAIMED = Family("vq_jobs_claimed", "Jobs claimed by this process.", ("job_type",))
JOBS_PROCESSED = Family(
    "vq_jobs_processed",
    "Attempts that ended in this process, by outcome "
    "(completed, failed, retry_scheduled, cancelled, released).",
    ("job_type", "outcome"),
)
PROCESSING_SECONDS = Family(
    "vq_job_processing_seconds",
    "Time from claim to the end of an attempt.",
    ("job_type", "outcome"),
    DURATION_BUCKETS,
)
WAIT_SECONDS = Family(
    "vq_job_wait_seconds", "Time from submission to claim.", ("job_type",), WAIT_BUCKETS
)
FAILURES = Family("vq_job_failures", "Failed attempts by error category.", ("job_type", "category"))
RETRIES = Family("vq_job_retries", "Retries scheduled after a failed attempt.", ("job_type",))
PROGRESS = Family("vq_job_progress_events", "Progress reports stored.", ("job_type",))
VERIFIED = Family("vq_videos_verified", "Result videos that passed verification.", ("job_type",))
FAMILIES = (
    JOBS_CLAIMED,
    JOBS_PROCESSED,
    PROCESSING_SECONDS,
    WAIT_SECONDS,
    FAILURES,
    RETRIES,
    PROGRESS,
    VERIFIED,
)


class JobMetrics(Collector):
    """Exposes the families above at scrape time."""

    def __init__(self, families: Iterable[Family]) -> None:
        self.families = tuple(families)

    def collect(self) -> Iterator[Metric]:
        """Every family, with the series it has so far."""
        for family in self.families:
            yield family.metric()


REGISTRY.register(JobMetrics(FAMILIES))

# Each (event, job type) gets a handler once, holding its series' bound methods, so an
# event costs a dict lookup and the counts themselves.
Handler = Callable[[dict[str, Any]], None]
_handlers: dict[tuple[str, str], Handler] = {}


def _claimed(job_type: str) -> Handler:
    claimed, waited = JOBS_CLAIMED.child(job_type).inc, WAIT_SECONDS.child(job_type).observe

    def handle(details: dict[str, Any]) -> None:
        claimed()
        wait = details.get("wait_s")
        if wait is not None:
            waited(float(wait))

    return handle


def _ended(job_type: str, outcome: str) -> Handler:
    counted = JOBS_PROCESSED.child(job_type, outcome).inc
    timed = (
        PROCESSING_SECONDS.child(job_type, outcome).observe
        if outcome in {"completed", "failed", "retry_scheduled"}
        else None
    )
    failed = outcome in {"failed", "retry_scheduled"}
    retried = RETRIES.child(job_type).inc if outcome == "retry_scheduled" else None

    def handle(details: dict[str, Any]) -> None:
        counted()
        duration = details.get("duration_s")
        if timed is not None and duration is not None:
            timed(float(duration))
        if failed:
            category = str(details.get("category") or "UNKNOWN")
            FAILURES.child(job_type, category).inc()  # categories: a handful, rarely
        if retried is not None:
            retried()

    return handle


def _counted(family: Family, job_type: str) -> Handler:
    inc = family.child(job_type).inc
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
