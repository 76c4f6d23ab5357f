"""The ``job_log`` plugin: one log line per step of a job's life.

Each line carries ``job_id`` and ``event`` (and the job type, attempt, worker,
error category...) as ``extra`` fields, so with ``--log-json`` a job is followed
with ``jq 'select(.job_id == "...")'`` across every worker's log.

Levels: a failed attempt (``retry_scheduled``, ``failed``) is a WARNING; every
other step (``claimed``, which names the service it calls, ``progress``,
``verified``, ``completed``, ``cancelled``, ``released``) is INFO, so a job's life
can be followed at the default level. Video jobs take minutes, so a few lines
each cost nothing; a queue of no-op jobs at thousands per second (benchmarks)
should run at ``VQ_LOG_LEVEL=WARNING``.

The credentials of URLs (``http://user:pw@host``) are replaced by ``***`` in the line
and its fields.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from vq_core import hookimpl
from vq_core.redact import redact_urls

log = logging.getLogger("vq.job.events")

# Detail fields copied into the record (scalars only: a log line is no place for a
# whole result or stack trace, and these names cannot clash with LogRecord's own).
FIELDS = (
    "job_type",
    "attempt",
    "worker_id",
    "category",
    "error",
    "retry_in_s",
    "duration_s",
    "wait_s",
    "percent",
    "stage",
    "video_url",
    "service",
    "reason",
)
LEVELS = {
    "failed": logging.WARNING,
    "retry_scheduled": logging.WARNING,
    "cancelled": logging.INFO,
}


def describe(event: str, details: dict[str, Any]) -> str:
    """The human part of the line."""
    d = details
    attempt = f" attempt {d['attempt']}" if "attempt" in d else ""
    if event == "claimed":
        service = f", calling service {d['service']}" if d.get("service") else ""
        return (
            f"claimed by {d.get('worker_id')}{attempt} after {d.get('wait_s', 0):.3f}s queued"
            f"{service}"
        )
    if event == "progress":
        return f"progress {d.get('percent', 0):.0f}% {d.get('stage', '')}".rstrip()
    if event == "verified":
        return f"video verified: {d.get('video_url')}"
    if event == "completed":
        took = f" in {d['duration_s']:.3f}s" if "duration_s" in d else ""
        return f"completed{took}"
    if event == "retry_scheduled":
        return (
            f"failed{attempt} ({d.get('category')}: {d.get('error')}); "
            f"retry in {d.get('retry_in_s', 0):.2f}s"
        )
    if event == "failed":
        return f"failed for good{attempt} ({d.get('category')}: {d.get('error')})"
    return event.replace("_", " ")


@hookimpl
def vq_job_event(job_id: uuid.UUID, event: str, details: dict[str, Any]) -> None:
    """Log one event of a job."""
    level = LEVELS.get(event, logging.INFO)
    if not log.isEnabledFor(level):
        return
    extra: dict[str, Any] = {"job_id": str(job_id), "event": event}
    for key in FIELDS:
        value = details.get(key)
        if value is not None:
            # A video URL may carry credentials (http://user:pw@...), and so may an
            # error message that quotes one.
            extra[key] = redact_urls(value) if isinstance(value, str) else value
    log.log(level, "job %s: %s", job_id, redact_urls(describe(event, details)), extra=extra)
