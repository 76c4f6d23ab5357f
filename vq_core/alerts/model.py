"""The shape of an alert and of a sink that delivers it (sinks are plugins)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Alert:
    """A notification about one alert: it fired, repeats, or resolved."""

    key: str
    rule: str
    state: str  # "firing" or "resolved"
    summary: str
    first_seen: datetime
    last_seen: datetime
    details: dict[str, Any] = field(default_factory=dict)
    resolved_at: datetime | None = None
    #: How many notifications of this alert were sent, this one included (2+ = a repeat).
    send_count: int = 1


@runtime_checkable
class AlertSink(Protocol):
    """Delivers alerts somewhere; may raise, the caller retries and logs."""

    name: str

    async def send(self, alert: Alert) -> None:
        """Deliver one alert."""
        ...
