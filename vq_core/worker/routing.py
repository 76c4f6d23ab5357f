"""Which service renders which job type, and whether that service may be used now.

Routing, most specific first: ``job_queue_config.service`` for the type, then
``Settings.services``, then the job types a service declares itself. A type
whose service is unhealthy, whose circuit is open, or which is paused is not
claimed: its jobs wait in the queue, nothing fails. Types with a cluster-wide cap
(``is_capped``) are claimed under the claim lock, which counts what runs everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from vq_core.models import ErrorCategory, QueueConfig
from vq_core.video_service import VideoService

# Failures that say "the service is in trouble", as opposed to "this job is bad".
SERVICE_TROUBLE = frozenset({ErrorCategory.TIMEOUT, ErrorCategory.API_ERROR, ErrorCategory.NETWORK})


class Router:
    """Routes job types to services and gates claims on service health."""

    def __init__(
        self,
        services: Mapping[str, VideoService],
        overrides: Mapping[str, str],
        breaker_threshold: int = 5,
        breaker_cooldown: float = 30.0,
    ) -> None:
        self.services = dict(services)
        self.overrides = dict(overrides)
        self._queue_config: dict[str, QueueConfig] = {}
        self._routes: dict[str, str] | None = None
        #: Cluster-wide caps of running jobs per service (``vq.service_limits``).
        self.service_limits: dict[str, int] = {}
        self.unhealthy: dict[str, str] = {}
        self.breaker_threshold = breaker_threshold
        self.breaker_cooldown = breaker_cooldown
        self._errors_in_row: dict[str, int] = {}
        self._open_until: dict[str, float] = {}

    @property
    def queue_config(self) -> dict[str, QueueConfig]:
        """Per-type configuration from ``vq.job_queue_config``."""
        return self._queue_config

    @queue_config.setter
    def queue_config(self, config: dict[str, QueueConfig]) -> None:
        if config != self._queue_config:
            self._queue_config = config
            self._routes = None

    def routes(self) -> dict[str, str]:
        """Job type -> service name, for every type some available service renders."""
        # Looked up for every job; recomputed only when the configuration changes.
        if self._routes is None:
            self._routes = self._compute_routes()
        return self._routes

    def _compute_routes(self) -> dict[str, str]:
        table: dict[str, str] = {}
        for service in self.services.values():
            for job_type in service.job_types:
                table.setdefault(job_type, service.name)
        table.update(self.overrides)
        for job_type, config in self._queue_config.items():
            if config.service:
                table[job_type] = config.service
        return {t: s for t, s in table.items() if s in self.services}

    def service_for(self, job_type: str) -> VideoService | None:
        """The service that renders ``job_type`` here, if any."""
        name = self.routes().get(job_type)
        # Mutating the guard is equivalent: services.get(None) is None as well.
        return self.services.get(name) if name else None  # pragma: no mutate

    def claimable_types(self) -> list[str]:
        """Types this worker may claim now: routed, service usable, not paused."""
        out = []
        for job_type, service in self.routes().items():
            config = self.queue_config.get(job_type)
            if config is not None and config.paused:
                continue
            if not self.usable(service):
                continue
            out.append(job_type)
        return sorted(out)

    def usable(self, service: str) -> bool:
        """Whether a service may be given jobs now: healthy and its circuit closed."""
        closed = self._open_until.get(service, 0) <= time.monotonic()
        return closed and service not in self.unhealthy

    def is_capped(self, job_type: str) -> bool:
        """Whether the type's jobs count against a cluster-wide cap (on the type, its
        groups or its service), so the claim must take them under the claim lock."""
        config = self.queue_config.get(job_type)
        if config is not None and (
            config.max_running is not None or config.max_running_per_group is not None
        ):
            return True
        return self.routes().get(job_type) in self.service_limits

    def timeout_for(self, job_type: str, default: float) -> float:
        """Seconds a job of this type may run."""
        config = self.queue_config.get(job_type)
        return config.timeout_s if config else default

    def concurrency_for(self, job_type: str) -> int | None:
        """Per-worker cap of jobs of this type in flight, if configured."""
        config = self.queue_config.get(job_type)
        return config.concurrency if config else None

    def record_outcome(self, service: str, category: ErrorCategory | None) -> bool:
        """Count a service's result; returns True when this failure opened the circuit."""
        if category is None or category not in SERVICE_TROUBLE:
            self._errors_in_row[service] = 0
            return False
        count = self._errors_in_row.get(service, 0) + 1
        self._errors_in_row[service] = count
        if count >= self.breaker_threshold and self._open_until.get(service, 0) <= time.monotonic():
            self._open_until[service] = time.monotonic() + self.breaker_cooldown
            return True
        return False

    def set_health(self, service: str, healthy: bool, detail: str | None) -> None:
        """Apply a health check: a healthy answer also closes the circuit."""
        if healthy:
            self.unhealthy.pop(service, None)
            self._open_until.pop(service, None)
            self._errors_in_row[service] = 0
        else:
            self.unhealthy[service] = detail or "health check failed"
