"""Bulk actions under ``/api/v1``: retry or cancel every job that matches the job list's
filters (``POST /jobs/retry``, ``POST /jobs/cancel``). docs/api.md is the reference.

Operators only. An empty filter would act on every job, so it needs ``"all": true``;
``"dry_run": true`` answers how many jobs the action would take, which is what a
confirmation shows (the admin page asks the store the same question).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from vq_core.models import Actor as ActionBy
from vq_core.models import ErrorCategory, JobFilter, JobStatus
from vq_core.validation import JobType, PriorityName
from vq_ui.api.jobs import StoreDep, job_filter
from vq_ui.auth.access import User, require

router = APIRouter(prefix="/api/v1")
Operator = Annotated[User, Depends(require("act"))]
BulkAction = Literal["retry", "cancel"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A value vq cannot use (a NUL character, a time out of range)"},
    401: {"description": "No valid token or session"},
    403: {"description": "Operators and admins only (or a cross-site cookie write)"},
    422: {"description": "A bad or unknown field, or no filter without `all: true`"},
}


class BulkRequest(BaseModel):
    """Which jobs to act on: the job list's filters (every one given must match), or
    ``all`` for every job; ``dry_run`` only counts them."""

    model_config = ConfigDict(extra="forbid")

    status: JobStatus | None = None
    job_type: JobType | None = None
    priority: PriorityName | None = None
    text: str | None = Field(
        default=None,
        max_length=200,
        description="words (or the starts of words) of the type, question or topic",
    )
    category: ErrorCategory | None = Field(
        default=None, description="error category of the latest failure"
    )
    service: str | None = Field(
        default=None, min_length=1, max_length=200, description="the latest attempt's service"
    )
    group_key: str | None = Field(default=None, min_length=1, max_length=200)
    created_after: AwareDatetime | None = Field(default=None, description="created at or after")
    created_before: AwareDatetime | None = Field(default=None, description="created before")
    all: bool = Field(default=False, description="required (true) when no filter is given")
    dry_run: bool = Field(default=False, description="count the matches, act on none")

    def to_filter(self) -> JobFilter:
        """The store's filter; a 422 naming ``all`` when it is empty and ``all`` is not set."""
        filters = job_filter(
            status=self.status,
            job_type=self.job_type,
            priority=self.priority,
            text=self.text,
            category=self.category,
            service=self.service,
            group_key=self.group_key,
            created_after=self.created_after,
            created_before=self.created_before,
        )
        if filters.is_empty() and not self.all:
            # In the shape of every other 422 (the error handler words it).
            raise RequestValidationError(
                [
                    {
                        "type": "value_error",
                        "loc": ("body", "all"),
                        "msg": "no filter given: send a filter, or true to act on every job",
                    }
                ]
            )
        return filters


class BulkDone(BaseModel):
    """What the action did: jobs acted on, and for a cancel how many of them were
    running (their workers were asked to stop them)."""

    action: BulkAction
    acted: int
    running: int


class BulkCount(BaseModel):
    """A dry run: how many jobs the action would take now."""

    action: BulkAction
    matched: int


async def _bulk(
    action: BulkAction, body: BulkRequest, store: StoreDep, user: User
) -> dict[str, Any]:
    filters = body.to_filter()
    if body.dry_run:
        return {"action": action, "matched": await store.count_actionable(filters, action)}
    actor = ActionBy(user.label, "api")
    if action == "retry":
        result = await store.bulk_retry(filters, actor)
    else:
        result = await store.bulk_cancel(filters, actor)
    return {"action": result.action, "acted": result.acted, "running": result.running}


@router.post("/jobs/retry", response_model=BulkDone | BulkCount, responses=_ERRORS)
async def bulk_retry(body: BulkRequest, store: StoreDep, user: Operator) -> dict[str, Any]:
    """Send every failed or cancelled job that matches back to the queue, each with a
    fresh set of retries; each job's history records who acted (via ``api``)."""
    return await _bulk("retry", body, store, user)


@router.post("/jobs/cancel", response_model=BulkDone | BulkCount, responses=_ERRORS)
async def bulk_cancel(body: BulkRequest, store: StoreDep, user: Operator) -> dict[str, Any]:
    """Cancel every queued job that matches, and ask the workers of running matches to
    stop them; each job's history records who acted (via ``api``)."""
    return await _bulk("cancel", body, store, user)
