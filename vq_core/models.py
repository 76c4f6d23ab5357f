"""Plain data types shared by the store, the worker, the CLI, plugins and the UI."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar


class JobStatus(enum.StrEnum):
    """Where a job is in its life. ``completed``, ``failed`` and ``cancelled`` are final
    until an operator retries the job."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class Priority(enum.IntEnum):
    """Claim order: a smaller value is claimed first. The API speaks the names."""

    URGENT = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3

    @classmethod
    def parse(cls, value: str | int | Priority) -> Priority:
        """Accept ``"high"``, ``1`` or ``Priority.HIGH``; raise ``ValueError`` otherwise."""
        if isinstance(value, Priority):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                names = ", ".join(p.label for p in cls)
                raise ValueError(f"unknown priority {value!r}; use one of {names}") from None
        return cls(value)

    @property
    def label(self) -> str:
        """The lower-case name the API and CLI use."""
        return self.name.lower()


class ErrorCategory(enum.StrEnum):
    """Why a job failed; decides whether it is retried."""

    TIMEOUT = "TIMEOUT"
    API_ERROR = "API_ERROR"
    RATE_LIMITED = "RATE_LIMITED"
    NETWORK = "NETWORK"
    INVALID_INPUT = "INVALID_INPUT"
    BAD_RESPONSE = "BAD_RESPONSE"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"

    @property
    def retryable(self) -> bool:
        """Bad input stays bad and a cancel is deliberate; everything else may pass later."""
        return self not in (ErrorCategory.INVALID_INPUT, ErrorCategory.CANCELLED)


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to enqueue, validated at the edge before it reaches the store.

    Slots, as ``ClaimedJob``: a batch submission builds thousands.
    """

    job_type: str
    payload: dict[str, Any] = field(default_factory=dict)
    priority: Priority = Priority.NORMAL
    run_at: datetime | None = None
    max_retries: int | None = None
    idempotency_key: str | None = None
    #: Whose job this is (for a doubt, the student): the claim takes turns between
    #: groups and a type may cap each group's running jobs. ``None``: no group.
    group_key: str | None = None
    #: Where the outcome is POSTed when the job ends; ``None``: the type's default, if any.
    callback_url: str | None = None
    #: The W3C trace context of the submission (``{"traceparent": ..., "tracestate": ...}``)
    #: when traces are on (``vq_core.tracing``); ``None`` otherwise.
    trace_context: dict[str, str] | None = None


@dataclass(frozen=True)
class Job:
    """A row of ``vq.jobs``."""

    id: uuid.UUID
    job_type: str
    priority: Priority
    status: JobStatus
    payload: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    progress: dict[str, Any] | None
    retry_count: int
    max_retries: int
    run_at: datetime
    worker_id: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    group_key: str | None = None
    #: The job's place in its group when it arrived (0 for the first; always 0
    #: without a group): the claim's turn order within a priority.
    fair_seq: int = 0
    #: The service the latest attempt was routed to (``None`` before the first claim).
    service: str | None = None
    #: Where the outcome is POSTed when the job ends (the type's default copied in).
    callback_url: str | None = None
    #: The W3C trace context its submission was traced in (``None``: traces were off).
    trace_context: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view, as the API and ``--json`` print it."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, uuid.UUID):
                value = str(value)
            elif isinstance(value, Priority):
                value = value.label
            out[name] = value
        return out


@dataclass(frozen=True)
class JobEvent:
    """One entry of a job's history."""

    id: int
    job_id: uuid.UUID
    event: str
    at: datetime
    worker_id: str | None
    details: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "id": self.id,
            "job_id": str(self.job_id),
            "event": self.event,
            "at": self.at.isoformat(),
            "worker_id": self.worker_id,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """What a worker needs to run a job it just claimed.

    Slots: one is made per claimed job, and a frozen dataclass without them takes half
    again as long to build (each field goes through ``object.__setattr__``).
    """

    id: uuid.UUID
    job_type: str
    priority: Priority
    payload: dict[str, Any]
    retry_count: int
    max_retries: int
    created_at: datetime
    #: The submission's W3C trace context, which the worker's spans continue.
    trace_context: dict[str, str] | None = None


@dataclass(frozen=True)
class JobFilter:
    """Filters of the job list; ``None`` means any."""

    status: JobStatus | None = None
    job_type: str | None = None
    priority: Priority | None = None
    text: str | None = None
    #: ``error.category`` of the job's latest failure.
    category: ErrorCategory | None = None
    #: The service of the latest attempt.
    service: str | None = None
    group_key: str | None = None
    #: Created at or after / before this time.
    created_after: datetime | None = None
    created_before: datetime | None = None

    def is_empty(self) -> bool:
        """Whether the filter matches every job (bulk actions refuse that by default)."""
        return all(getattr(self, name) is None for name in self.__dataclass_fields__)


@dataclass(frozen=True)
class JobPage:
    """One page of the job list and the cursor of the next one (``None`` at the end)."""

    jobs: list[Job]
    next_cursor: str | None


@dataclass(frozen=True)
class QueueConfig:
    """A row of ``vq.job_queue_config``. ``vq_core.validation.check_queue_config`` checks
    one before it is stored (``Store.set_queue_config`` calls it). Rows read back are
    not checked again: reading must not fail, and the schema already refuses a
    timeout, retry limit or cap out of range."""

    job_type: str
    max_retries: int = 3
    timeout_s: float = 600.0
    service: str | None = None
    concurrency: int | None = None
    paused: bool = False
    #: Running jobs of the type across every worker (``None``: no cap).
    max_running: int | None = None
    #: Running jobs of one group of the type across every worker.
    max_running_per_group: int | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None
    #: The callback URL of the type's jobs that name none.
    callback_url: str | None = None

    #: The settings an operator may change (``Store.update_queue_config``).
    SETTINGS: ClassVar[tuple[str, ...]] = (
        "paused",
        "service",
        "timeout_s",
        "max_retries",
        "concurrency",
        "max_running",
        "max_running_per_group",
        "callback_url",
    )


@dataclass(frozen=True)
class Actor:
    """Who asked for an action and how: recorded in the job's history and in
    ``vq.config_changes``. ``via`` is ``page``, ``api``, ``cli`` or ``sql``."""

    name: str
    via: str

    def to_dict(self) -> dict[str, str]:
        """The ``by`` and ``via`` of a history entry's details."""
        return {"by": self.name, "via": self.via}

    def __str__(self) -> str:
        return f"{self.name} ({self.via})"


@dataclass(frozen=True)
class WorkerInfo:
    """A row of ``vq.workers`` with whether its heartbeat is recent."""

    id: str
    hostname: str
    pid: int
    concurrency: int
    job_types: list[str]
    status: str
    started_at: datetime
    last_heartbeat: datetime
    lease_seconds: float
    jobs_in_flight: int
    jobs_completed: int
    jobs_failed: int
    consecutive_failures: int
    stale: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        return out
