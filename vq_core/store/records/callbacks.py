"""The records of ``vq_core.store.callbacks`` (deliveries and their attempts), which
exports them; made on first use (``vq_core.store.records`` says why)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["CallbackAttempt", "CallbackDelivery", "DueCallback"]


@dataclass(frozen=True)
class DueCallback:
    """A delivery a deliverer leased: where to send what, and which attempt this is."""

    id: uuid.UUID
    job_id: uuid.UUID
    url: str
    body: dict[str, Any]
    attempt: int


@dataclass(frozen=True)
class CallbackAttempt:
    """One attempt of a delivery (or an admin's redelivery, outcome ``redelivered``)."""

    attempt: int
    at: str
    outcome: str
    status_code: int | None = None
    detail: str | None = None
    worker_id: str | None = None


@dataclass(frozen=True)
class CallbackDelivery:
    """A delivery of a job's outcome and its attempts, as the API and the page show it."""

    id: uuid.UUID
    job_id: uuid.UUID
    url: str
    body: dict[str, Any]
    #: ``pending``, ``delivered`` or ``failed``.
    state: str
    #: Attempts begun since it was written (or since the last redelivery).
    attempts: int
    next_attempt_at: datetime
    locked_until: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    attempt_log: list[CallbackAttempt] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (the ``callbacks`` list of ``GET /api/v1/jobs/{id}``)."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": str(self.id),
            "url": self.url,
            "state": self.state,
            "attempts": self.attempts,
            "next_attempt_at": iso(self.next_attempt_at) if self.state == "pending" else None,
            "last_error": self.last_error,
            "created_at": iso(self.created_at),
            "delivered_at": iso(self.delivered_at),
            "body": self.body,
            "attempt_log": [vars(a) for a in self.attempt_log],
        }
