"""Server-Sent Events: ``GET /api/v1/jobs/{id}/events`` (one job, until its final state)
and ``GET /api/v1/events`` (every job matching the list's filters, for dashboards).

Each event is ``id:`` its ``job_events`` id, ``event:`` its name and ``data:`` one
line of JSON. A client that reconnects sends the last id it saw (``Last-Event-ID``, as
``EventSource`` does, or ``?last_event_id=``) and gets every event after it, then the
live ones, with no gap and no repeat: the replay reads the database up to where the
process's hub (``vq_core.event_hub``) stood when the stream subscribed, and the hub
brings everything after. docs/platform.md, "Watching a job live", is the reference.

A job's stream needs a viewer (token or session) or the job's read token
(``?token=``, ``vq_ui.auth.read_tokens``). Stack traces are left out for everyone but
admins, as in the rest of the API.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from vq_core import db
from vq_core.config import Settings
from vq_core.errors import InvalidInput, JobNotFound
from vq_core.event_hub import EventHub, Subscription
from vq_core.models import JobStatus, Priority
from vq_core.redact import without_stack
from vq_core.store import Store
from vq_core.store.events import FINAL_STATUSES, StreamEvent
from vq_core.validation import PriorityName
from vq_ui.auth.access import User, current_user, require
from vq_ui.auth.read_tokens import read_tokens

router = APIRouter(prefix="/api/v1")
#: A comment line this often keeps proxies and load balancers from closing an idle stream.
KEEP_ALIVE_S = 15.0
#: What EventSource waits before reconnecting (ms), sent at the start of each stream.
RETRY_MS = 2000
REPLAY_PAGE = 500
NoNul = r"^[^\x00]*$"
SSE_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx buffers proxied answers unless told not to; a buffered stream is not live.
    "X-Accel-Buffering": "no",
}
_STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A text/event-stream",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    401: {"description": "No valid token or session (or read token)"},
    403: {"description": "The role may not do this"},
}


def hub_of(app: FastAPI) -> EventHub:
    """The app's hub (``install`` puts it there)."""
    hub: EventHub = app.state.vq_event_hub
    return hub


def install(app: FastAPI, settings: Settings, store: Store) -> EventHub:
    """Give ``app`` its one hub (it listens from the first subscriber on) and close the
    hub at shutdown."""

    async def dsn() -> str:
        # LISTEN goes direct: past a transaction pooler it would hear nothing.
        return await db.resolve_listen_dsn(settings)

    hub = EventHub(store, dsn, options=db.connect_options(settings))
    app.state.vq_event_hub = hub
    app.router.on_shutdown.append(hub.close)
    app.include_router(router)
    return hub


def event_data(event: StreamEvent, admin: bool) -> dict[str, Any]:
    """The ``data:`` of an event as a reader may see it (stacks for admins only)."""
    status = event.status
    data: dict[str, Any] = {
        "id": event.id,
        "job_id": str(event.job_id),
        "event": event.event,
        "at": event.at.isoformat(),
        "status": status.value if status else None,
        "job_type": event.job_type,
        "worker": event.worker_id,
        "details": event.details if admin else without_stack(event.details),
    }
    if event.event == "progress" and isinstance(event.details, dict):
        data["progress"] = {
            "percent": event.details.get("percent"),
            "stage": event.details.get("stage"),
        }
    return data


def sse(event: StreamEvent, admin: bool) -> str:
    """One event in the text/event-stream format."""
    data = json.dumps(event_data(event, admin), separators=(",", ":"), default=str)
    return f"id: {event.id}\nevent: {event.event}\ndata: {data}\n\n"


def _resume_after(header: str | None, query: int | None) -> int:
    """Where a stream resumes: ``Last-Event-ID`` (what EventSource sends on reconnect)
    wins over ``?last_event_id=``; 0 means from the beginning."""
    if header is not None and header.strip():
        text = header.strip()
        if not text.isdigit() or len(text) > 18:
            raise InvalidInput("Last-Event-ID: not an event id")
        return int(text)
    return query or 0


def _stream(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)


async def _live(sub: Subscription, after: int, admin: bool, closes: bool) -> AsyncIterator[str]:
    """The live part: events past ``after`` as the hub hands them over, a keep-alive
    comment when idle; with ``closes``, it ends after a final state."""
    while True:
        event = await sub.next(KEEP_ALIVE_S)
        if event is None:
            if sub.closed:
                # The hub closed (shutdown) or this client fell too far behind: it
                # reconnects with Last-Event-ID and replays what it missed.
                return
            yield ": keep-alive\n\n"
            continue
        if event.id <= after:
            continue  # the replay sent it (or the client had it)
        after = max(after, event.id)
        yield sse(event, admin)
        if closes and event.final:
            return


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse, responses=_STREAM_RESPONSES)
async def job_events(
    job_id: uuid.UUID,
    request: Request,
    token: Annotated[
        str | None, Query(max_length=100, pattern=NoNul, description="the job's read_token")
    ] = None,
    last_event_id: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=40, pattern=NoNul)
    ] = None,
) -> StreamingResponse:
    """One job's events as Server-Sent Events: its history after ``Last-Event-ID`` (all
    of it without one), then each state change and progress report as it happens; the
    stream ends after the final state (completed, failed, cancelled). A viewer's
    credentials, or the job's ``read_token`` as ``?token=``."""
    user = await current_user(request)
    viewer = user is not None and user.can("read")
    if not viewer and (token is None or not await read_tokens(request).check(job_id, token)):
        raise HTTPException(
            401,
            "authentication required: a viewer's token or session, or the job's read_token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    admin = user is not None and user.can("admin")
    after = _resume_after(last_event_id_header, last_event_id)
    store: Store = request.app.state.vq_store
    if await store.job_stream_state(job_id) is None:
        raise JobNotFound(f"no job {job_id}")
    hub = hub_of(request.app)

    async def body() -> AsyncIterator[str]:
        # Subscribed inside the body: a body that never runs (the client left first)
        # then holds no subscription.
        sub = await hub.subscribe(job_id=job_id)
        try:
            yield f"retry: {RETRY_MS}\n\n"
            sent = after
            cursor = after
            while cursor < sub.start:
                page = await store.job_events_between(job_id, cursor, sub.start, REPLAY_PAGE)
                for event in page:
                    yield sse(event, admin)
                    sent = event.id
                if len(page) < REPLAY_PAGE:
                    break
                cursor = page[-1].id
            state = await store.job_stream_state(job_id)
            # Finished, and its last event is behind us: nothing more will come. (One
            # after sub.start arrives through the hub, and ends the stream there.)
            if state is None or (state[0] in FINAL_STATUSES and state[1] <= max(sent, sub.start)):
                return
            async for chunk in _live(sub, sent, admin, True):
                yield chunk
        finally:
            sub.close()

    return _stream(body())


@router.get("/events", response_class=StreamingResponse, responses=_STREAM_RESPONSES)
async def all_events(
    request: Request,
    status: JobStatus | None = None,
    type: Annotated[str | None, Query(max_length=64, pattern=NoNul)] = None,
    priority: PriorityName | None = None,
    group_key: Annotated[str | None, Query(min_length=1, max_length=200, pattern=NoNul)] = None,
    service: Annotated[str | None, Query(min_length=1, max_length=200, pattern=NoNul)] = None,
    last_event_id: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=40, pattern=NoNul)
    ] = None,
) -> StreamingResponse:
    """Every job's events as Server-Sent Events, for dashboards: those of jobs matching
    the filters (on the job as it is when the event is read), live; with
    ``Last-Event-ID`` first the matching events after it. It does not end. Viewers."""
    user: User = await require("read")(request)
    admin = user.can("admin")
    after = _resume_after(last_event_id_header, last_event_id)
    rank = Priority.parse(priority) if priority else None
    store: Store = request.app.state.vq_store

    def match(event: StreamEvent) -> bool:
        return (
            (type is None or event.job_type == type)
            and (status is None or event.job_status == status)
            and (rank is None or event.priority == rank)
            and (group_key is None or event.group_key == group_key)
            and (service is None or event.service == service)
        )

    hub = hub_of(request.app)

    async def body() -> AsyncIterator[str]:
        sub = await hub.subscribe(match=match)
        try:
            yield f"retry: {RETRY_MS}\n\n"
            cursor = sent = after
            # Without Last-Event-ID the stream starts now: a dashboard wants what
            # happens, not the whole history.
            while after and cursor < sub.start:
                page = await store.events_between(
                    cursor,
                    sub.start,
                    REPLAY_PAGE,
                    job_type=type,
                    status=status,
                    priority=rank,
                    group_key=group_key,
                    service=service,
                )
                for event in page:
                    yield sse(event, admin)
                    sent = event.id
                if len(page) < REPLAY_PAGE:
                    break
                cursor = page[-1].id
            async for chunk in _live(sub, sent, admin, False):
                yield chunk
        finally:
            sub.close()

    return _stream(body())
