"""Validation at the edges: what a client may submit, checked once by pydantic.

The CLI and the REST API both turn input into ``JobRequest`` before anything
reaches the store, so a bad request gets the same clear message everywhere.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vq_core.errors import InvalidInput
from vq_core.models import NewJob, Priority

PriorityName = Literal["urgent", "high", "normal", "low"]
MAX_PAYLOAD_BYTES = 256 * 1024


class JobRequest(BaseModel):
    """One job as a client submits it."""

    model_config = ConfigDict(extra="forbid")

    job_type: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    priority: PriorityName = "normal"
    payload: dict[str, Any] = Field(default_factory=dict)
    run_at: datetime | None = None
    max_retries: int | None = Field(default=None, ge=0, le=100)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("payload")
    @classmethod
    def _payload_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value)) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"payload is larger than {MAX_PAYLOAD_BYTES} bytes")
        return value

    @field_validator("run_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("run_at needs a time zone (e.g. 2026-01-01T12:00:00Z)")
        return value

    def to_new_job(self) -> NewJob:
        """The store's form of this request."""
        return NewJob(
            job_type=self.job_type,
            payload=self.payload,
            priority=Priority.parse(self.priority),
            run_at=self.run_at,
            max_retries=self.max_retries,
            idempotency_key=self.idempotency_key,
        )


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each bad field, e.g. ``priority: Input should be 'urgent', ...``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
    )


def parse_job_request(data: dict[str, Any]) -> NewJob:
    """Validate a submitted job; ``InvalidInput`` names the fields that are wrong."""
    try:
        return JobRequest.model_validate(data).to_new_job()
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc)) from None
