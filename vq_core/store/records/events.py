"""The records of ``vq_core.store.events`` (the live event stream's reads), which exports them;
made on first use (``vq_core.store.records`` says why)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vq_core.models import JobStatus, Priority

__all__ = ["EVENT_STATUS", "FINAL_STATUSES", "StreamBatch", "StreamEvent"]

#: The status each event leaves its job in (``lease_expired`` says it in its details).
EVENT_STATUS: dict[str, JobStatus] = {
    "created": JobStatus.QUEUED,
    "claimed": JobStatus.RUNNING,
    "progress": JobStatus.RUNNING,
    "cancel_requested": JobStatus.RUNNING,
    "retry_scheduled": JobStatus.QUEUED,
    "retried": JobStatus.QUEUED,
    "released": JobStatus.QUEUED,
    "completed": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
}
#: The states a job's stream ends with.
FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True)
class StreamEvent:
    """A ``job_events`` row with its job's filterable fields (``None`` once the job is gone)."""

    id: int
    job_id: uuid.UUID
    event: str
    at: datetime
    worker_id: str | None
    details: dict[str, Any] | None
    job_type: str | None
    group_key: str | None
    priority: Priority | None
    job_status: JobStatus | None
    service: str | None

    @property
    def status(self) -> JobStatus | None:
        """The status this event left the job in, where the event says it."""
        if self.event == "lease_expired" and isinstance(self.details, dict):
            try:
                return JobStatus(str(self.details.get("status")))
            except ValueError:
                return None
        return EVENT_STATUS.get(self.event)

    @property
    def final(self) -> bool:
        """Whether this event put the job in a final state."""
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class StreamBatch:
    """One read of the hub: events oldest first, the transactions in progress in its
    snapshot, and whether the transactions it was asked about had ended in it."""

    events: list[StreamEvent]
    in_progress: list[str]
    ended: bool
