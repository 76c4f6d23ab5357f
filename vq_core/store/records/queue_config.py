"""The records of ``vq_core.store.queue_config`` (changes and service caps), which exports them;
made on first use (``vq_core.store.records`` says why)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["ConfigChange", "ServiceLimit"]


@dataclass(frozen=True)
class ConfigChange:
    """One entry of ``vq.config_changes``: who changed which settings, from what to what."""

    id: int
    at: datetime
    subject: str
    actor: str
    via: str
    changes: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {**dataclasses.asdict(self), "at": self.at.isoformat()}


@dataclass(frozen=True)
class ServiceLimit:
    """A service's cluster-wide cap of running jobs."""

    service: str
    max_running: int
    updated_at: datetime
    updated_by: str | None
