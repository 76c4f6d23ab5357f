"""Pure helpers of the admin page: turning store models into the strings and rows it shows.

Nothing here touches NiceGUI or the database, so it is tested without a browser.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from vq_core.models import FINAL_STATUSES, Job, JobEvent, JobFilter, JobStatus, Priority

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
        "attempts": f"{job.retry_count}/{job.max_retries}",
        "error": str(error.get("type") or "") if job.status == JobStatus.FAILED else "",
        "created_at": timestamp(job.created_at),
        "updated_at": timestamp(job.updated_at),
        "can_cancel": can_cancel(job),
        "can_retry": can_retry(job),
        "cancel_requested": job.cancel_requested,
    }


def event_row(event: JobEvent) -> dict[str, Any]:
    """A row of the details view's history table."""
    details = event.details or {}
    return {
        "id": event.id,
        "at": timestamp(event.at),
        "event": event.event,
        "worker": event.worker_id or "",
        "details": json.dumps(details, default=str, ensure_ascii=False, sort_keys=True)
        if details
        else "",
    }


def matches(job: Job, filters: JobFilter) -> bool:
    """Whether ``job`` passes the status, type and priority of ``filters`` (not the text)."""
    return (
        (filters.status is None or job.status == filters.status)
        and (filters.job_type is None or job.job_type == filters.job_type)
        and (filters.priority is None or job.priority == filters.priority)
    )


def build_filter(status: str, job_type: str, priority: str, text: str) -> JobFilter:
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
    search = " ".join(text.split())[:MAX_SEARCH] or None
    return JobFilter(
        status=job_status, job_type=job_type or None, priority=job_priority, text=search
    )


def safe_url(url: object) -> str | None:
    """An http(s) URL or site path to show as media or a link; anything else (``javascript:``,
    ``data:``) is dropped because results come from services we do not control."""
    if not isinstance(url, str):
        return None
    if url.startswith(("http://", "https://")):
        return url
    return url if url.startswith("/") and not url.startswith("//") else None
