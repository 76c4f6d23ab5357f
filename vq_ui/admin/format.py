"""Pure helpers of the admin page: turning store models into the strings and rows it shows.

Nothing here touches NiceGUI or the database, so it is tested without a browser.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vq_core.models import (
    FINAL_STATUSES,
    ErrorCategory,
    Job,
    JobEvent,
    JobFilter,
    JobStatus,
    Priority,
)
from vq_core.redact import without_stack
from vq_core.store.listing import matches as store_matches

STATUS_COLORS = {
    JobStatus.QUEUED: "blue-grey",
    JobStatus.RUNNING: "primary",
    JobStatus.COMPLETED: "positive",
    JobStatus.FAILED: "negative",
    JobStatus.CANCELLED: "grey",
}
# (label, sort key understood by Store.list_jobs), first is the default.
SORT_CHOICES = {
    "-created_at": "Newest first",
    "created_at": "Oldest first",
    "-updated_at": "Recently updated",
    "priority": "Highest priority",
}
PAGE_SIZES = (25, 50, 100)
MAX_SEARCH = 200
ANY = ""


def can_cancel(job: Job) -> bool:
    """A queued job cancels at once; a running one is asked to stop, once."""
    return job.status not in FINAL_STATUSES and not job.cancel_requested


def can_retry(job: Job) -> bool:
    """Only a job that ended badly goes back to the queue."""
    return job.status in (JobStatus.FAILED, JobStatus.CANCELLED)


def duration(seconds: float | None) -> str:
    """``95.2`` -> ``"1m 35s"``; sub-second values keep a decimal; ``None`` -> ``"-"``."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    total = round(seconds)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def percent(rate: float | None) -> str:
    """``0.9512`` -> ``"95.1%"``; ``None`` (nothing finished) -> ``"-"``."""
    return "-" if rate is None else f"{rate * 100:.1f}%"


def timestamp(value: datetime | str | None) -> str:
    """A UTC time to the second, as operators compare it with logs."""
    if value is None:
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``value`` was, e.g. ``"12s ago"``."""
    if value is None:
        return "-"
    elapsed = ((now or datetime.now(UTC)) - value).total_seconds()
    return f"{duration(max(0.0, elapsed))} ago"


def pretty_json(value: Any) -> str:
    """Indented JSON for the details view; never raises on odd values."""
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def progress_text(progress: dict[str, Any] | None) -> str:
    """``{"percent": 40, "stage": "diagram"}`` -> ``"40% diagram"``."""
    if not progress:
        return ""
    pct = progress.get("percent")
    stage = progress.get("stage") or ""
    return f"{pct:.0f}% {stage}".strip() if isinstance(pct, int | float) else str(stage)


def summary(job: Job, limit: int = 80) -> str:
    """The line of the payload an operator recognises a job by (the question, or topic)."""
    payload = job.payload or {}
    text = payload.get("question") or payload.get("topic") or payload.get("content")
    if not isinstance(text, str):
        text = json.dumps(payload, default=str, ensure_ascii=False) if payload else ""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short_id(job_id: object) -> str:
    """Eight characters that tell jobs apart: the end of the id. Ids are time-ordered
    (migration 0005), so their start is the same for every job of a batch."""
    return str(job_id)[-8:]


def job_row(job: Job) -> dict[str, Any]:
    """A row of the job table: flat strings and flags only (QTable cannot show lists)."""
    error = job.error or {}
    return {
        "id": str(job.id),
        "short_id": short_id(job.id),
        "job_type": job.job_type,
        "priority": job.priority.label,
        "status": job.status.value,
        "status_color": STATUS_COLORS[job.status],
        "summary": summary(job),
        "progress": progress_text(job.progress) if job.status == JobStatus.RUNNING else "",
        # Retries used / allowed: what retry_count counts. A job that completed at its
        # first attempt reads 0/3 and is labelled so (the details list each attempt).
        "retries": f"{job.retry_count}/{job.max_retries}",
        "error": str(error.get("type") or "") if job.status == JobStatus.FAILED else "",
        "created_at": timestamp(job.created_at),
        "updated_at": timestamp(job.updated_at),
        "can_cancel": can_cancel(job),
        "can_retry": can_retry(job),
        "cancel_requested": job.cancel_requested,
    }


# History events an operator caused: their details carry ``by`` and ``via``.
_OPERATOR_EVENTS = ("retried", "cancelled", "cancel_requested")
_FAILURE_EVENTS = ("failed", "retry_scheduled")
# Scalar details worth a word in an event's line when no rule below words it.
_QUIET_KEYS = {"stack", "job_type", "timestamp", "exception", "by", "via"}


def is_validation_error(error: dict[str, Any] | None) -> bool:
    """Whether an error record is a rejected input (a student's invalid payload): its
    message names the fields, and a server stack trace would only mislead."""
    return bool(error) and (error or {}).get("type") == ErrorCategory.INVALID_INPUT.value


def validation_problems(message: str) -> list[tuple[str, str]]:
    """``"payload.question: Field required; priority: bad"`` -> ``[(field, message)...]``,
    as ``describe_validation_error`` and ``InvalidInput`` word them; a message without a
    field gives ``("payload", message)``."""
    out = []
    for part in message.split("; "):
        field_name, sep, text = part.partition(": ")
        if sep and field_name and " " not in field_name:
            out.append((field_name, text))
        elif part.strip():
            out.append(("payload", part.strip()))
    return out


def error_line(error: dict[str, Any]) -> str:
    """``API_ERROR: orchestrator answered 503`` (an invalid input names its fields)."""
    category = str(error.get("type") or error.get("category") or "UNKNOWN")
    message = str(error.get("message") or error.get("error") or "")
    message = " ".join(message.split())
    if len(message) > 200:
        message = message[:199] + "…"
    return f"{category}: {message}" if message else category


def event_summary(event: JobEvent, attempt: int | None = None) -> str:
    """One readable line for a history entry (the raw details fold under it)."""
    details = event.details or {}
    parts: list[str] = []
    if event.event == "claimed" and attempt is not None:
        parts.append(f"attempt {attempt}")
    if event.event in _FAILURE_EVENTS:
        parts.append(error_line(details))
        if details.get("attempt") is not None:
            parts.append(f"attempt {details['attempt']}")
        if event.event == "retry_scheduled" and details.get("run_at"):
            parts.append(f"retry at {timestamp(details['run_at'])}")
    elif event.event == "progress":
        parts.append(progress_text(details) or "progress")
    elif event.event == "lease_expired":
        parts.append(f"worker stopped renewing its lease; now {details.get('status', 'queued')}")
    elif event.event == "released":
        parts.append("handed back to the queue by a stopping worker")
    else:
        extra = [
            f"{k} {v}"
            for k, v in sorted(details.items())
            if k not in _QUIET_KEYS and isinstance(v, str | int | float | bool)
        ]
        parts.extend(extra[:4])
    if details.get("by"):
        via = f" via {details['via']}" if details.get("via") else ""
        parts.append(f"by {details['by']}{via}")
    return " · ".join(parts)


def event_row(
    event: JobEvent, attempt: int | None = None, show_stack: bool = False
) -> dict[str, Any]:
    """A row of the details view's history: one line, the raw details folded under it.

    Stack traces stay out of the line for everyone; in the folded details they are for
    admins only, and never for a rejected input (its message says everything).
    """
    details = event.details or {}
    if not show_stack or is_validation_error(details):
        details = without_stack(details) or {}
    worker = event.worker_id or details.get("worker_id") or ""
    return {
        "id": event.id,
        "at": timestamp(event.at),
        "event": event.event,
        "worker": str(worker),
        "summary": event_summary(event, attempt),
        "raw": json.dumps(details, default=str, ensure_ascii=False, sort_keys=True, indent=2)
        if details
        else "",
    }


@dataclass(frozen=True)
class Attempt:
    """One attempt at a job: a ``claimed`` event and how it ended (if it has)."""

    number: int
    worker: str
    claimed_at: datetime
    outcome: str = "running"
    ended_at: datetime | None = None

    def line(self) -> str:
        """``attempt 2 · render-1 · claimed 2025-01-02 03:04:05 · failed: API_ERROR``."""
        ended = f" at {timestamp(self.ended_at)}" if self.ended_at else ""
        return (
            f"attempt {self.number} · {self.worker} · claimed {timestamp(self.claimed_at)}"
            f" · {self.outcome}{ended}"
        )


# The events that end an attempt, and how each is worded.
_ENDINGS = {
    "completed": "completed",
    "failed": "failed",
    "retry_scheduled": "failed, retry scheduled",
    "cancelled": "cancelled",
    "released": "released by its stopping worker",
    "lease_expired": "lease expired",
}


def attempts(events: list[JobEvent]) -> list[Attempt]:
    """The attempts at a job, oldest first, from its history (oldest first): each
    ``claimed`` event is one, named by the worker that claimed it."""
    out: list[Attempt] = []
    current: Attempt | None = None
    for event in events:
        if event.event == "claimed":
            if current is not None:
                out.append(current)
            current = Attempt(len(out) + 1, event.worker_id or "?", event.at)
        elif current is not None and event.event in _ENDINGS:
            outcome = _ENDINGS[event.event]
            if event.event in _FAILURE_EVENTS and event.details:
                outcome = f"{outcome}: {error_line(event.details)}"
            out.append(dataclasses.replace(current, outcome=outcome, ended_at=event.at))
            current = None
    if current is not None:
        out.append(current)
    return out


def matches(job: Job, filters: JobFilter) -> bool:
    """Whether ``job`` passes every filter but the text (the store's own rule, for a
    pasted job id read by its key)."""
    return store_matches(job, filters)


def _moment(raw: str, name: str) -> datetime | None:
    text = raw.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{name}: not a date or time (use 2025-01-31 or 2025-01-31 14:00)"
        ) from None
    # The page shows times in UTC, so a time typed without a zone is UTC too.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def build_filter(
    status: str,
    job_type: str,
    priority: str,
    text: str,
    *,
    category: str = ANY,
    service: str = ANY,
    group_key: str = ANY,
    created_after: str = ANY,
    created_before: str = ANY,
) -> JobFilter:
    """The store filter of the page's controls; ``""`` means any. Unknown values raise
    ``ValueError`` naming the field (the selects only offer valid ones, but a stale
    client may send anything)."""
    try:
        job_status = JobStatus(status) if status else None
    except ValueError:
        raise ValueError(f"status: unknown status {status!r}") from None
    try:
        job_priority = Priority.parse(priority) if priority else None
    except ValueError as exc:
        raise ValueError(f"priority: {exc}") from None
    try:
        error_category = ErrorCategory(category) if category else None
    except ValueError:
        raise ValueError(f"category: unknown error category {category!r}") from None
    search = " ".join(text.split())[:MAX_SEARCH] or None
    return JobFilter(
        status=job_status,
        job_type=job_type or None,
        priority=job_priority,
        text=search,
        category=error_category,
        service=service.strip()[:200] or None,
        group_key=group_key.strip()[:200] or None,
        created_after=_moment(created_after, "created from"),
        created_before=_moment(created_before, "created before"),
    )


def describe_filter(filters: JobFilter) -> str:
    """The filters in words, for a bulk action's confirmation: ``status failed, type doubt``."""
    words = []
    for name in filters.__dataclass_fields__:
        value = getattr(filters, name)
        if value is None:
            continue
        if isinstance(value, Priority):
            value = value.label
        elif isinstance(value, datetime):
            value = timestamp(value)
        label = {"job_type": "type", "text": "search", "group_key": "group"}.get(name, name)
        words.append(f"{label.replace('_', ' ')} {value}")
    return ", ".join(words) or "no filter: every job"


def safe_url(url: object) -> str | None:
    """An http(s) URL or site path to show as media or a link; anything else (``javascript:``,
    ``data:``) is dropped because results come from services we do not control."""
    if not isinstance(url, str):
        return None
    if url.startswith(("http://", "https://")):
        return url
    return url if url.startswith("/") and not url.startswith("//") else None


def render_origin(result: dict[str, Any] | None) -> str | None:
    """A warning for videos made by vq's own stand-in renderers, or ``None``.

    The local renderer and the reference services (``vq services serve``) make real but
    simple videos; nobody should mistake one for the platform's production render.
    """
    if not result:
        return None
    renderer = result.get("renderer")
    how = f" ({renderer})" if isinstance(renderer, str) and renderer else ""
    if result.get("service") == "local":
        where = "vq's local renderer on this machine"
    elif result.get("reference") is True:
        where = f"vq's reference services{how}"
    else:
        return None
    note = f"Made by {where}: a stand-in video, not a production render."
    fallback = result.get("fallback")
    if isinstance(fallback, str) and fallback:
        note += f" {fallback}."
    return note
