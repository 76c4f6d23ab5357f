"""Steering under ``/api/v1``: each job type's settings and state (``/types``), who
changed them (``/types/{type}/changes``), and a service's cluster-wide cap
(``PATCH /services/{name}``). docs/api.md is the reference.

Reads need a viewer, changes an operator. Every change goes through the store's
``update_queue_config`` / ``set_service_limit``, as ``vq types set`` and the admin page
do, so it is checked the same way and recorded with who made it (``via`` ``api``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from vq_core.config import Settings
from vq_core.models import Actor as ActionBy
from vq_core.validation import QueueConfigPatch, ServiceLimitRequest, check_callback_url
from vq_ui.api.jobs import StoreDep
from vq_ui.auth.access import User, require

router = APIRouter(prefix="/api/v1")
Reader = Annotated[User, Depends(require("read"))]
Operator = Annotated[User, Depends(require("act"))]

# The constraints of vq_core.validation.JobType, as a path parameter: a name no job
# may have gets a 422 here, before the store.
TypeName = Annotated[
    str,
    Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$", description="a job type"),
]
ServiceName = Annotated[
    str, Path(min_length=1, max_length=200, pattern=r"^[^\x00]+$", description="a service")
]

_READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid token or session"},
    403: {"description": "The role may not read"},
    422: {"description": "A malformed parameter; `detail` names it"},
}
_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A value vq cannot use (a null that may not be, a NUL character)"},
    401: {"description": "No valid token or session"},
    403: {"description": "Operators and admins only (or a cross-site cookie write)"},
    422: {"description": "A bad field or value, or an unknown field; `detail` names it"},
}


async def get_settings(request: Request) -> Settings:
    """The app's settings (set by ``create_app``)."""
    # async, as get_store: no worker thread per request.
    settings: Settings = request.app.state.vq_settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


# -- answers, for the OpenAPI document ------------------------------------------------


class TypeSettings(BaseModel):
    """A type's settings: its row of ``vq.job_queue_config``, or the defaults."""

    max_retries: int
    timeout_s: float
    service: str | None = Field(description="the configured service (null: routed by workers)")
    concurrency: int | None = Field(description="running jobs per worker process")
    paused: bool
    max_running: int | None = Field(description="running jobs across every worker")
    max_running_per_group: int | None = Field(description="running jobs of one group")
    callback_url: str | None = Field(
        default=None, description="the callback URL of the type's jobs that name none"
    )
    updated_at: str | None = Field(description="ISO 8601; null for a type without a row")
    updated_by: str | None


class TypeStateOut(BaseModel):
    """One job type: settings, counts, the service that renders it and its state."""

    job_type: str
    state: str = Field(description="active, paused, unrouted, service missing or service unhealthy")
    problem: str | None = Field(description="why the type's jobs wait, for a person")
    service: str | None = Field(description="the service that renders it (configured or routed)")
    service_max_running: int | None = Field(description="that service's cluster-wide cap")
    configured: bool = Field(description="whether the type has a row of settings")
    settings: TypeSettings
    counts: dict[str, int] = Field(
        description="ready, scheduled, running, completed, failed, cancelled"
    )


class TypeList(BaseModel):
    """Every job type that is configured, has jobs or is routed to a service."""

    types: list[TypeStateOut]


class ConfigChangeOut(BaseModel):
    """A recorded change: who changed which settings, ``[before, after]`` per setting."""

    id: int
    at: str
    subject: str = Field(description="type:NAME or service:NAME")
    actor: str = Field(description="a user's name or token:NAME")
    via: str = Field(description="page, api, cli or sql")
    changes: dict[str, list[Any]]


class ChangeList(BaseModel):
    """Changes, newest first."""

    changes: list[ConfigChangeOut]


class ServiceLimitOut(BaseModel):
    """A service's cluster-wide cap after a change (``null``: none)."""

    service: str
    max_running: int | None


# -- routes ---------------------------------------------------------------------------


async def _type_state(store: StoreDep, job_type: str, default_timeout: float) -> dict[str, Any]:
    for state in await store.type_states(default_timeout):
        if state.job_type == job_type:
            return state.to_dict()
    # update_queue_config has just written the row, and a configured type is listed.
    raise HTTPException(404, f"type: no job type named {job_type!r}")


@router.get("/types", response_model=TypeList, responses=_READ_ERRORS)
async def list_types(store: StoreDep, settings: SettingsDep, user: Reader) -> dict[str, Any]:
    """Every job type with its settings, counts, service and state; a type whose jobs
    cannot run (paused, unrouted, its service missing or unhealthy) says why in ``problem``."""
    states = await store.type_states(settings.default_timeout)
    return {"types": [s.to_dict() for s in states]}


@router.patch("/types/{type}", response_model=TypeStateOut, responses=_WRITE_ERRORS)
async def update_type(
    type: TypeName,
    patch: QueueConfigPatch,
    store: StoreDep,
    settings: SettingsDep,
    user: Operator,
) -> dict[str, Any]:
    """Change a type's settings: a field left out stays, ``null`` clears a cap or the
    service. Takes effect on every worker without a restart; the change is recorded with
    who made it (``GET /types/{type}/changes``). Answers the type's state."""
    if patch.callback_url is not None:
        check_callback_url(patch.callback_url, settings.callbacks.allowed_origins)
    await store.update_queue_config(
        type, patch, ActionBy(user.label, "api"), settings.default_timeout
    )
    return await _type_state(store, type, settings.default_timeout)


@router.get("/types/{type}/changes", response_model=ChangeList, responses=_READ_ERRORS)
async def type_changes(
    type: TypeName,
    store: StoreDep,
    user: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Who changed the type's settings, and from what to what, newest first."""
    changes = await store.config_changes(f"type:{type}", limit=limit)
    return {"changes": [c.to_dict() for c in changes]}


@router.patch("/services/{name}", response_model=ServiceLimitOut, responses=_WRITE_ERRORS)
async def update_service(
    name: ServiceName, body: ServiceLimitRequest, store: StoreDep, user: Operator
) -> dict[str, Any]:
    """Cap the service's running jobs across every worker (``null`` removes the cap);
    the change is recorded with who made it. A service no worker has yet may be capped
    in advance."""
    await store.set_service_limit(name, body.max_running, ActionBy(user.label, "api"))
    return {"service": name, "max_running": body.max_running}
