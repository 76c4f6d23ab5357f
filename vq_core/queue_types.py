"""What each job type's state is, as the page, ``vq types list``, ``vq stats`` and
``GET /api/v1/types`` show it: its settings, its counts, and whether its jobs can run.

A type routed to a service no worker has, or to one that is unhealthy, is claimed by
nobody: its jobs wait. ``describe_types`` says so instead of leaving them silent.
Routing is read from ``vq.service_health``, where each worker records the types it
routes to each service at every health check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vq_core.models import QueueConfig

#: Each type's counts, in this order.
COUNTS = ("ready", "scheduled", "running", "completed", "failed", "cancelled")


@dataclass(frozen=True)
class TypeState:
    """One job type: its settings, counts, the service that renders it and its state.

    ``state`` is one of ``active``, ``paused``, ``unrouted`` (no service renders the
    type), ``service missing`` (routed to a service no worker has) or
    ``service unhealthy``; ``problem`` words the last three for a person.
    """

    job_type: str
    config: QueueConfig
    configured: bool
    counts: dict[str, int] = field(default_factory=dict)
    service: str | None = None
    service_max_running: int | None = None
    state: str = "active"
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (``vq types list --json``, the API)."""
        config = dataclasses.asdict(self.config)
        if config["updated_at"] is not None:
            config["updated_at"] = config["updated_at"].isoformat()
        config.pop("job_type")
        return {
            "job_type": self.job_type,
            "state": self.state,
            "problem": self.problem,
            "service": self.service,
            "service_max_running": self.service_max_running,
            "configured": self.configured,
            "settings": config,
            "counts": self.counts,
        }


def describe_types(
    configs: Mapping[str, QueueConfig],
    counts: Mapping[str, Mapping[str, int]],
    health: Iterable[Mapping[str, Any]],
    service_limits: Mapping[str, int],
    defaults: QueueConfig,
) -> list[TypeState]:
    """Every type that is configured, has jobs or is routed somewhere, by name.

    ``health`` holds ``vq.service_health`` rows (service, healthy, detail, job_types);
    ``defaults`` the settings of a type without a row (its ``job_type`` is ignored).
    """
    services = {row["service"]: row for row in health}
    routed: dict[str, str] = {}
    for name, row in sorted(services.items()):
        for job_type in row["job_types"]:
            routed.setdefault(job_type, name)
    names = sorted(set(configs) | set(counts) | set(routed))
    return [
        _describe(
            job_type,
            configs.get(job_type),
            counts.get(job_type, {}),
            routed,
            services,
            service_limits,
            defaults,
        )
        for job_type in names
    ]


def _describe(
    job_type: str,
    config: QueueConfig | None,
    counts: Mapping[str, int],
    routed: Mapping[str, str],
    services: Mapping[str, Mapping[str, Any]],
    service_limits: Mapping[str, int],
    defaults: QueueConfig,
) -> TypeState:
    settings = config or dataclasses.replace(defaults, job_type=job_type)
    service = settings.service or routed.get(job_type)
    state, problem = "active", None
    if service is None:
        state, problem = "unrouted", "no service renders this type: its jobs wait"
    elif service not in services:
        state = "service missing"
        problem = f"routed to {service}, which no worker has: its jobs wait"
    elif not services[service]["healthy"]:
        detail = services[service].get("detail") or "health check failed"
        state = "service unhealthy"
        problem = f"{service} is unhealthy ({detail}): its jobs wait"
    if settings.paused:
        state = "paused"
    return TypeState(
        job_type=job_type,
        config=settings,
        configured=config is not None,
        counts={name: int(counts.get(name, 0)) for name in COUNTS},
        service=service,
        service_max_running=service_limits.get(service) if service else None,
        state=state,
        problem=problem,
    )
