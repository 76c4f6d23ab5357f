"""The REST API under ``/api/v1``: submit, list, inspect, cancel and retry jobs; stats,
health, readiness and Prometheus metrics. docs/api.md is the reference.

Routes call the same store methods as the CLI. Reads need a viewer, actions an
operator (see ``vq_ui.auth.access``); ``/healthz`` and ``/readyz`` are open for load balancers.
A job's error and history keep their Python stack traces (server paths) for admins only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from vq_core import db, tracing
from vq_core.errors import InvalidInput
from vq_core.metrics import render_metrics
from vq_core.models import Actor as ActionBy
from vq_core.models import ErrorCategory, Job, JobFilter, JobStatus, NewJob, Priority
from vq_core.redact import job_document_without_stacks
from vq_core.store import Store
from vq_core.validation import JobRequest, PriorityName, check_callback_url, check_text
from vq_ui.auth.access import User, auth_state, current_user, require
from vq_ui.auth.read_tokens import read_tokens

MAX_BATCH = 1000
SortKey = Literal["created_at", "-created_at", "updated_at", "-updated_at", "priority", "-priority"]
NoNul = r"^[^\x00]*$"

log = logging.getLogger("vq.ui")
router = APIRouter(prefix="/api/v1")
Reader = Annotated[User, Depends(require("read"))]
Actor = Annotated[User, Depends(require("act"))]


async def get_store(request: Request) -> Store:
    """The app's store (set by ``create_app``)."""
    # async: FastAPI runs a plain function dependency in a worker thread, a thread
    # handoff per request for an attribute read.
    store: Store = request.app.state.vq_store
    return store


StoreDep = Annotated[Store, Depends(get_store)]


def shown(document: dict[str, Any], user: User) -> dict[str, Any]:
    """A job document as ``user`` may see it: stack traces for admins only."""
    return document if user.can("admin") else job_document_without_stacks(document)


def _job(job: Job, user: User) -> dict[str, Any]:
    return shown(job.to_dict(), user)


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid token or session"},
    403: {"description": "The role may not do this"},
}


# -- submitting ---------------------------------------------------------------------


def _with_header_key(job: NewJob, key: str | None, suffix: str) -> NewJob:
    if key is None or job.idempotency_key is not None:
        return job
    # replace(), not a new NewJob: every other field (group_key too) must survive.
    return dataclasses.replace(job, idempotency_key=key + suffix)


@router.post(
    "/jobs",
    status_code=201,
    responses={200: {"description": "Every job existed already (idempotent replay)"}, **_ERRORS},
)
async def submit_jobs(
    request: Request,
    store: StoreDep,
    user: Actor,
    response: Response,
    body: Annotated[JobRequest | list[JobRequest], Body()],
    idempotency_key: Annotated[
        str | None, Header(min_length=1, max_length=180, pattern=NoNul)
    ] = None,
) -> dict[str, Any]:
    """Submit one job (an object) or several (a list). With ``Idempotency-Key``, a
    repeated request returns the jobs it created the first time (200 instead of 201);
    for a list, item ``i`` uses the key ``KEY#i``."""
    if isinstance(body, list):
        if not 1 <= len(body) <= MAX_BATCH:
            raise InvalidInput(f"body: send between 1 and {MAX_BATCH} jobs")
        jobs = [
            _with_header_key(r.to_new_job(f"{i}."), idempotency_key, f"#{i}")
            for i, r in enumerate(body)
        ]
    else:
        if idempotency_key and body.idempotency_key not in (None, idempotency_key):
            raise InvalidInput("Idempotency-Key: differs from the body's idempotency_key")
        jobs = [_with_header_key(body.to_new_job(), idempotency_key, "")]
    _check_callbacks(request, jobs, isinstance(body, list))
    # Traces on: a vq.submit span (continuing the caller's traceparent) whose context
    # the jobs carry to the worker; a plain enqueue otherwise.
    answers = await tracing.submit(jobs, store.enqueue_many, via="api", headers=request.headers)
    if not any(a.created for a in answers):
        response.status_code = 200
    # read_token: lets a page without an account watch this job's event stream.
    tokens = read_tokens(request)
    items = [
        {"id": str(a.id), "created": a.created, "read_token": await tokens.token_for(a.id)}
        for a in answers
    ]
    if isinstance(body, list):
        return {"jobs": items}
    response.headers["Location"] = f"/api/v1/jobs/{answers[0].id}"
    return items[0]


def _check_callbacks(request: Request, jobs: list[NewJob], batch: bool) -> None:
    # Only origins the operator allowed (the video check's guard): refused here, with
    # the field named, rather than failed at delivery.
    origins = request.app.state.vq_settings.callbacks.allowed_origins
    for i, job in enumerate(jobs):
        if job.callback_url is not None:
            check_callback_url(
                job.callback_url, origins, f"{i}.callback_url" if batch else "callback_url"
            )


# -- reading ------------------------------------------------------------------------


def _utc(value: datetime | None, field: str) -> datetime | None:
    # A time that leaves Python's calendar once moved to UTC would fail in asyncpg's
    # encoder (a 500); refuse it here, naming the field.
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{field}: out of range") from None


def job_filter(
    *,
    status: JobStatus | None = None,
    job_type: str | None = None,
    priority: PriorityName | None = None,
    text: str | None = None,
    category: ErrorCategory | None = None,
    service: str | None = None,
    group_key: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> JobFilter:
    """The store's filter from the list's (and the bulk actions') parameters.

    Blank text counts as no filter, as the store reads it, so ``JobFilter.is_empty``
    tells the truth; text PostgreSQL cannot store raises ``InvalidInput`` naming it.
    """
    texts = {"job_type": job_type, "text": text, "service": service, "group_key": group_key}
    for name, value in texts.items():
        if value is not None:
            check_text(value, name)
    return JobFilter(
        status=status,
        job_type=job_type,
        priority=Priority.parse(priority) if priority else None,
        text=text if text and text.strip() else None,
        category=category,
        service=service,
        group_key=group_key,
        created_after=_utc(created_after, "created_after"),
        created_before=_utc(created_before, "created_before"),
    )


@router.get("/jobs", responses=_ERRORS)
async def list_jobs(
    store: StoreDep,
    user: Reader,
    status: JobStatus | None = None,
    type: Annotated[str | None, Query(max_length=64, pattern=NoNul)] = None,
    priority: PriorityName | None = None,
    q: Annotated[str | None, Query(max_length=200, pattern=NoNul)] = None,
    category: Annotated[
        ErrorCategory | None, Query(description="error category of the latest failure")
    ] = None,
    service: Annotated[
        str | None,
        Query(min_length=1, max_length=200, pattern=NoNul, description="latest attempt's"),
    ] = None,
    group_key: Annotated[str | None, Query(min_length=1, max_length=200, pattern=NoNul)] = None,
    created_after: Annotated[
        AwareDatetime | None, Query(description="created at or after (ISO 8601 with a zone)")
    ] = None,
    created_before: Annotated[
        AwareDatetime | None, Query(description="created before (ISO 8601 with a zone)")
    ] = None,
    sort: SortKey = "-created_at",
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """One page of jobs, newest first by default; pass ``next_cursor`` back as ``cursor``
    for the next page (``null`` at the end). ``q`` matches the id, or words (and starts
    of words) of the type, question or topic.
    The bulk actions (``POST /jobs/retry``, ``/jobs/cancel``) take the same filters."""
    filters = job_filter(
        status=status,
        job_type=type,
        priority=priority,
        text=q,
        category=category,
        service=service,
        group_key=group_key,
        created_after=created_after,
        created_before=created_before,
    )
    try:
        page = await store.list_jobs(filters, sort=sort, cursor=cursor, limit=limit)
    except db.DataError:
        # The cursor decoded but its value does not fit this sort (another sort's cursor).
        raise InvalidInput("cursor: not a cursor of this sort order") from None
    return {"jobs": [_job(j, user) for j in page.jobs], "next_cursor": page.next_cursor}


@router.get("/jobs/{job_id}", responses={404: {"description": "No such job"}, **_ERRORS})
async def get_job(job_id: uuid.UUID, store: StoreDep, user: Reader) -> dict[str, Any]:
    """A job with its event history (oldest first) and its completion callbacks
    (``callbacks``: each delivery, oldest first, with its attempts)."""
    job = await store.get_job(job_id)
    events = await store.get_events(job_id)
    callbacks = [d.to_dict() for d in await store.job_callbacks(job_id)]
    document = {**job.to_dict(), "events": [e.to_dict() for e in events]}
    return {**shown(document, user), "callbacks": callbacks}


# -- acting -------------------------------------------------------------------------

_ACTION_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such job"},
    409: {"description": "The job's status does not allow this"},
    **_ERRORS,
}


@router.post("/jobs/{job_id}/cancel", responses=_ACTION_ERRORS)
async def cancel_job(job_id: uuid.UUID, store: StoreDep, user: Actor) -> dict[str, Any]:
    """Cancel a queued job at once, or ask the worker of a running job to stop it."""
    return _job(await store.cancel(job_id, actor=ActionBy(user.label, "api")), user)


@router.post("/jobs/{job_id}/retry", responses=_ACTION_ERRORS)
async def retry_job(job_id: uuid.UUID, store: StoreDep, user: Actor) -> dict[str, Any]:
    """Send a failed or cancelled job back to the queue with a fresh set of retries."""
    return _job(await store.retry(job_id, actor=ActionBy(user.label, "api")), user)


@router.post(
    "/jobs/{job_id}/callbacks/{delivery_id}/redeliver",
    responses={404: {"description": "No such job or delivery"}, **_ERRORS},
)
async def redeliver_callback(
    job_id: uuid.UUID,
    delivery_id: uuid.UUID,
    store: StoreDep,
    user: Annotated[User, Depends(require("admin"))],
) -> dict[str, Any]:
    """Send a completion callback again (admins): the delivery is pending at once, with
    the same id (``X-VQ-Delivery``) and body and a fresh set of attempts; the request
    is kept in its attempt log. Answers the delivery."""
    delivery = await store.redeliver_callback(job_id, delivery_id, ActionBy(user.label, "api"))
    return delivery.to_dict()


# -- the queue as a whole -----------------------------------------------------------


@router.get("/stats", responses=_ERRORS)
async def stats(store: StoreDep, user: Reader) -> dict[str, Any]:
    """Counts by status, type and priority; depth; oldest queued age; throughput and
    success rate per window; processing time (avg, p50, p95, p99)."""
    return await store.stats()


@router.get("/workers", responses=_ERRORS)
async def workers(store: StoreDep, user: Reader) -> dict[str, Any]:
    """Known workers, each with whether its heartbeat is stale."""
    return {"workers": [w.to_dict() for w in await store.list_workers()]}


@router.get("/services", responses=_ERRORS)
async def services(store: StoreDep, user: Reader) -> dict[str, Any]:
    """The latest health check of every video service, each with its cluster-wide cap
    (``max_running``, ``null``: none); ``limits`` lists every cap, a service's that no
    worker has yet included, with who set it."""
    rows = await store.list_service_health()
    limits = await store.service_limits()
    caps = {limit.service: limit.max_running for limit in limits}
    return {
        "services": [
            {
                **{k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()},
                "max_running": caps.get(row["service"]),
            }
            for row in rows
        ],
        "limits": [
            {
                "service": limit.service,
                "max_running": limit.max_running,
                "updated_at": limit.updated_at.isoformat(),
                "updated_by": limit.updated_by,
            }
            for limit in limits
        ],
    }


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (no database access, no auth)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready; `reason` says why"}})
async def readyz(store: StoreDep) -> JSONResponse:
    """Ready to serve: the database answers and no migration is pending (no auth)."""
    try:
        async with asyncio.timeout(5):
            pending = await store.pending_migrations()
    except db.DB_ERRORS as exc:  # the timeout too: TimeoutError is an OSError
        # Anyone may ask: the answer names the kind of failure, the log has the detail
        # (which can carry hosts, paths or user names).
        log.warning("readyz: database unreachable: %s: %s", type(exc).__name__, exc)
        reason = f"database unreachable ({type(exc).__name__})"
        return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)
    if pending:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
        return JSONResponse(
            {"status": "not ready", "reason": f"pending migrations: {names}"}, status_code=503
        )
    return JSONResponse({"status": "ready"})


@router.get("/metrics", response_class=Response, responses=_ERRORS)
async def metrics(request: Request, store: StoreDep) -> Response:
    """Prometheus text format. Needs a viewer unless ``metrics_public`` is set."""
    if not auth_state(request).config.metrics_public:
        user = await current_user(request)
        if user is None:
            raise HTTPException(401, "authentication required", {"WWW-Authenticate": "Bearer"})
    body = await render_metrics(store)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
