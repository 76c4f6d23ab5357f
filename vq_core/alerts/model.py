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


class SinkError(Exception):
    """A delivery that failed, with a message fit to log and to show on the admin page
    (a status, a refusal: never a URL's credentials or a secret). Sinks may raise any
    exception; this one's message is recorded as it is."""


@runtime_checkable
class AlertSink(Protocol):
    """Delivers alerts somewhere; may raise, the caller retries and logs."""

    name: str

    async def send(self, alert: Alert) -> None:
        """Deliver one alert."""
        ...
