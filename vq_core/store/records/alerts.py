"""The records of ``vq_core.store.alerts`` (alert state, the rules' readings), which
exports them; made on first use (``vq_core.store.records`` says why)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from vq_core.models import QueueConfig, WorkerInfo

FIRING = "firing"
RESOLVED = "resolved"

__all__ = ["FIRING", "RESOLVED", "AlertRecord", "OutcomeReading", "QueueReading", "QueueSnapshot"]


@dataclass(frozen=True)
class AlertRecord:
    """One row of ``vq.alerts``: the state of an alert as every process sees it."""

    key: str
    rule: str
    state: str
    summary: str
    details: dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    last_sent_at: datetime | None = None
    resolved_at: datetime | None = None
    send_count: int = 0

    @property
    def firing(self) -> bool:
        """Whether the condition held at the last evaluation."""
        return self.state == FIRING

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (times as ISO strings) for the API and the admin page."""
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class QueueReading:
    """Queued jobs of one type: ready now, all, and the longest wait of a ready one."""

    job_type: str
    ready: int
    queued: int
    oldest_wait_s: float | None


@dataclass(frozen=True)
class OutcomeReading:
    """Jobs of one type that finished within the failure-rate window."""

    job_type: str
    completed: int
    failed: int


@dataclass(frozen=True)
class QueueSnapshot:
    """Everything the alert rules look at, read in one transaction."""

    now: datetime
    queues: list[QueueReading] = field(default_factory=list)
    outcomes: list[OutcomeReading] = field(default_factory=list)
    workers: list[WorkerInfo] = field(default_factory=list)
    services: list[dict[str, Any]] = field(default_factory=list)
    queue_config: dict[str, QueueConfig] = field(default_factory=dict)
