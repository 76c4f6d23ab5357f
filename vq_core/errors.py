"""Errors that cross layers: bad input at the edges and categorised service failures."""

from __future__ import annotations

import traceback
from datetime import UTC, datetime
from typing import Any

from vq_core.models import ErrorCategory


class InvalidInput(ValueError):
    """Input rejected at an edge (API, CLI, payload); the message names the field."""


class JobNotFound(LookupError):
    """No job has this id."""


class InvalidTransition(Exception):
    """The job exists but its status does not allow the action (cancel a completed job...)."""


class ServiceError(Exception):
    """A video service call that failed, already categorised by the plugin that made it.

    The store keeps every field, so an operator sees which service, which call, what
    status and the start of the body without reading logs. ``permanent`` marks a
    failure that a retry would only repeat, whatever its category allows (a video URL
    outside the allowed origins): the job fails at once.
    """

    def __init__(
        self,
        category: ErrorCategory,
        message: str,
        *,
        service: str | None = None,
        call: str | None = None,
        status_code: int | None = None,
        body_excerpt: str | None = None,
        retry_after: float | None = None,
        permanent: bool = False,
    ) -> None:
        super().__init__(message)
        self.category = category
        self.message = message
        self.service = service
        self.call = call
        self.status_code = status_code
        self.body_excerpt = body_excerpt
        self.retry_after = retry_after
        self.permanent = permanent

    def details(self) -> dict[str, Any]:
        """The service-specific fields, without empty ones."""
        fields = {
            "service": self.service,
            "call": self.call,
            "status_code": self.status_code,
            "body_excerpt": self.body_excerpt,
            "retry_after": self.retry_after,
        }
        return {k: v for k, v in fields.items() if v is not None}


def error_record(
    exc: BaseException, category: ErrorCategory, attempt: int, retryable: bool
) -> dict[str, Any]:
    """The JSON kept in ``jobs.error``: message, type, retryable, attempt, timestamp, stack."""
    record: dict[str, Any] = {
        "message": str(exc) or type(exc).__name__,
        "type": category.value,
        "exception": type(exc).__name__,
        "retryable": retryable,
        "attempt": attempt,
        "timestamp": datetime.now(UTC).isoformat(),
        "stack": "".join(traceback.format_exception(exc))[-8000:],
    }
    if isinstance(exc, ServiceError):
        record.update(exc.details())
    return record
