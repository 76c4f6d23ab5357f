"""The records of ``vq_core.store.alert_sinks`` (sinks and deliveries), which exports them;
made on first use (``vq_core.store.records`` says why)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vq_core.sink_config import public_config, target

__all__ = ["AlertSinkInfo", "Delivery", "StoredSink"]


@dataclass(frozen=True)
class AlertSinkInfo:
    """A stored sink as people see it: where it delivers, never its secret."""

    id: int
    name: str
    kind: str
    #: As stored (a URL's credentials included): shown through ``to_dict``/``target`` only.
    config: dict[str, Any] = field(repr=False)
    has_secret: bool = False
    created_at: datetime | None = None
    created_by: str = ""

    @property
    def target(self) -> str:
        """Where it delivers, in one line (URL credentials hidden)."""
        return target(self.kind, self.config)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for ``--json`` and the page: no secret, URL credentials hidden."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "target": self.target,
            "config": public_config(self.config),
            "has_secret": self.has_secret,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class StoredSink:
    """A stored sink with what delivering needs, its secret included (not in ``repr``)."""

    id: int
    name: str
    kind: str
    config: dict[str, Any]
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver a notification to a sink, and how it went.

    ``installation_wide`` tells a stored sink (``sink_id``, ``None`` once removed) from
    one a process's own configuration provides (the log sink).
    """

    id: int
    notification: uuid.UUID
    alert_key: str
    alert_state: str
    sink: str
    sink_id: int | None
    installation_wide: bool
    attempt: int
    outcome: str
    detail: str | None
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "id": self.id,
            "notification": str(self.notification),
            "alert_key": self.alert_key,
            "alert_state": self.alert_state,
            "sink": self.sink,
            "sink_id": self.sink_id,
            "installation_wide": self.installation_wide,
            "attempt": self.attempt,
            "outcome": self.outcome,
            "detail": self.detail,
            "at": self.at.isoformat(),
        }
