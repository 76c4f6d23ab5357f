"""The installation's alert sinks under ``/api/v1/alerts``: list, add and remove them
(``/alerts/sinks``), send a test notification to every one (``/alerts/test``), and how
each delivery went (``/alerts/deliveries``). docs/api.md is the reference.

Managing sinks and sending a test are for admins, as on the admin page and with
``vq alerts``: a sink decides where the installation's alerts go, and a test reaches
real people. Any role may read the deliveries, as on the page, where every role sees
whether a notification reached anyone (sink names and outcomes, never a target).

A sink is checked by ``vq_core.sink_config``, the same functions the CLI and the page
use, so the same input is refused with the same message; here that is a 422 naming the
field. Secrets (a webhook's ``secret``, an e-mail sink's ``password``) are taken in and
never answered: a sink says only ``has_secret``. The test goes through the plugin
manager and ``AlertEngine.send_test``, as the page does from its web process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated, Any, Literal, NoReturn

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from vq_core.alerts.engine import AlertEngine, collect_sinks, sink_builder
from vq_core.config import ConfigError, Settings
from vq_core.errors import InvalidInput
from vq_core.models import Actor as ActionBy
from vq_core.plugins import PluginManager, make_plugin_manager
from vq_core.sink_config import (
    EMAIL,
    MAX_RECIPIENTS,
    MAX_SECRET,
    MAX_URL,
    NAME_PATTERN,
    WEBHOOK,
    SinkSpec,
    email_spec,
    webhook_spec,
)
from vq_core.store.alert_sinks import AlertSinkExists, Delivery
from vq_ui.api.jobs import StoreDep
from vq_ui.api.types import SettingsDep
from vq_ui.auth.access import User, require

log = logging.getLogger("vq.api")
router = APIRouter(prefix="/api/v1")
Admin = Annotated[User, Depends(require("admin"))]
Reader = Annotated[User, Depends(require("read"))]

SinkName = Annotated[
    str,
    Path(min_length=1, max_length=64, pattern=NAME_PATTERN.pattern, description="a sink's name"),
]
# Text a person typed: bounded, and no NUL (PostgreSQL's jsonb cannot hold one).
NoNul = r"^[^\x00]*$"

_ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid token or session"},
    403: {"description": "Admins only (or a cross-site cookie write)"},
}
_BAD_SINK = {"description": "A bad field, a field of the other kind, or an unknown one"}


# -- requests and answers, for the OpenAPI document ----------------------------------


class NewSink(BaseModel):
    """A sink to store, with the options of ``vq alerts sinks add``: ``url`` (and
    ``secret``) for a webhook; ``to``, ``smtp_host``, ``from`` (and ``smtp_port``,
    ``username``, ``password``, ``starttls``, ``ssl``) for an e-mail sink."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        max_length=64, description="1-64 letters, digits, _ . -, starting with a letter or digit"
    )
    kind: Literal["webhook", "email"]
    url: str | None = Field(
        default=None, max_length=MAX_URL, pattern=NoNul, description="webhook: http(s) URL"
    )
    secret: str | None = Field(
        default=None,
        max_length=MAX_SECRET,
        description="webhook: signs each POST (X-VQ-Signature); never answered",
    )
    to: list[Annotated[str, Field(max_length=320, pattern=NoNul)]] | None = Field(
        default=None, max_length=MAX_RECIPIENTS, description="email: the recipients"
    )
    smtp_host: str | None = Field(default=None, max_length=253, description="email: SMTP server")
    smtp_port: int | None = Field(default=None, description="email: default 25 (465 with ssl)")
    sender: str | None = Field(
        default=None,
        alias="from",
        max_length=320,
        pattern=NoNul,
        description="email: the sender address",
    )
    username: str | None = Field(
        default=None, max_length=200, pattern=NoNul, description="email: SMTP login"
    )
    password: str | None = Field(
        default=None, max_length=MAX_SECRET, description="email: SMTP password; never answered"
    )
    starttls: bool = Field(default=False, description="email: upgrade the connection to TLS")
    ssl: bool = Field(default=False, description="email: speak TLS from the start")
    timeout: float | None = Field(
        default=None, allow_inf_nan=False, description="seconds per delivery (0-120]"
    )


class SinkOut(BaseModel):
    """A stored sink: where it delivers, never its secret."""

    id: int
    name: str
    kind: str
    target: str = Field(description="one line: the URL (credentials hidden) or the recipients")
    config: dict[str, Any] = Field(description="its options, URL credentials hidden, no secret")
    has_secret: bool = Field(description="whether a secret (signing key, password) is set")
    created_at: str | None
    created_by: str


class SinkList(BaseModel):
    """Every stored sink, by name; none means alerts reach only the log."""

    sinks: list[SinkOut]
    log_only: bool = Field(description="no sink is stored: alerts are written to the log only")


class Removed(BaseModel):
    """The sink that was removed (its past deliveries stay, by name)."""

    removed: str


class TestOutcome(BaseModel):
    """How the test notification went to one sink, after every attempt."""

    alert_key: str
    sink: str
    installation_wide: bool = Field(description="stored (true) or from this process's config")
    outcome: Literal["sent", "failed"]
    attempts: int
    detail: str | None = Field(description="why it failed (URL credentials hidden)")


class TestSent(BaseModel):
    """Each sink's outcome; ``all_sent`` is false when any sink failed."""

    deliveries: list[TestOutcome]
    all_sent: bool


class DeliveryOut(BaseModel):
    """One attempt to deliver a notification to a sink."""

    id: int
    notification: str = Field(description="the notification's id (its attempts share it)")
    alert_key: str
    alert_state: str = Field(description="firing or resolved")
    sink: str
    sink_id: int | None = Field(description="the stored sink's id; null: a process's own sink")
    installation_wide: bool
    attempt: int
    outcome: Literal["sent", "retried", "failed"]
    detail: str | None
    at: str


class SinkDeliveries(BaseModel):
    """One sink's recent attempts, newest first, and the latest outcome."""

    sink: str
    installation_wide: bool
    last_outcome: str
    last_at: str
    attempts: list[DeliveryOut]


class DeliveryList(BaseModel):
    """Recent delivery attempts grouped per sink, the sink attempted last first."""

    sinks: list[SinkDeliveries]


# -- adding: the CLI's checks, answered as 422s --------------------------------------

# sink_config's messages start with the field they are about, in its own words; the
# body's name for it (``host`` is ``smtp_host`` here).
_FIELDS = {"host": "smtp_host", "port": "smtp_port", "starttls and ssl": "ssl"}
_WEBHOOK_ONLY = ("url", "secret")
_EMAIL_ONLY = ("to", "smtp_host", "smtp_port", "from", "username", "password", "starttls", "ssl")


def _refuse(field: str, message: str) -> NoReturn:
    """A 422 in the shape of every other one (the error handler words it)."""
    raise RequestValidationError([{"type": "value_error", "loc": ("body", field), "msg": message}])


def _given(body: NewSink, fields: Sequence[str]) -> list[str]:
    values = body.model_dump(by_alias=True)
    return [f for f in fields if values.get(f) not in (None, False, [], "")]


def sink_spec(body: NewSink) -> SinkSpec:
    """The checked sink, as ``vq alerts sinks add`` builds it; a 422 naming the field
    when ``vq_core.sink_config`` refuses it, or for an option of the other kind."""
    stray = _given(body, _EMAIL_ONLY if body.kind == WEBHOOK else _WEBHOOK_ONLY)
    if stray:
        _refuse(
            stray[0], f"not a field of {'a webhook' if body.kind == WEBHOOK else 'an e-mail'} sink"
        )
    try:
        if body.kind == WEBHOOK:
            return webhook_spec(body.name, body.url or "", body.secret or None, body.timeout)
        return email_spec(
            body.name,
            to=body.to or [],
            host=body.smtp_host or "",
            sender=body.sender or "",
            port=body.smtp_port,
            username=body.username or None,
            password=body.password or None,
            starttls=body.starttls,
            use_ssl=body.ssl,
            timeout=body.timeout,
        )
    except InvalidInput as exc:
        field, _, message = str(exc).partition(": ")
        if not message:
            field, message = "body", str(exc)
        if field == "secret" and body.kind == EMAIL:
            field = "password"  # an e-mail sink's secret is its password
        _refuse(_FIELDS.get(field, field), message)


# -- the test send: the page's path ---------------------------------------------------


def _plugin_manager(request: Request, settings: Settings) -> PluginManager:
    """This app's plugin manager, built on the first test: it builds the sinks."""
    pm: PluginManager | None = getattr(request.app.state, "vq_alert_plugins", None)
    if pm is None:
        pm = make_plugin_manager(settings)
        request.app.state.vq_alert_plugins = pm
    return pm


def _per_sink(attempts: Sequence[Delivery]) -> list[dict[str, Any]]:
    """The attempts (newest first) grouped per sink; a process's own sink apart from a
    stored one of the same name."""
    groups: dict[tuple[str, bool], dict[str, Any]] = {}
    for a in attempts:
        key = (a.sink, a.installation_wide)
        group = groups.get(key)
        if group is None:
            group = groups[key] = {
                "sink": a.sink,
                "installation_wide": a.installation_wide,
                "last_outcome": a.outcome,
                "last_at": a.at.isoformat(),
                "attempts": [],
            }
        group["attempts"].append(a.to_dict())
    return list(groups.values())


# -- routes ---------------------------------------------------------------------------


@router.get("/alerts/sinks", response_model=SinkList, responses=_ADMIN_ERRORS)
async def list_sinks(store: StoreDep, user: Admin) -> dict[str, Any]:
    """Every installation-wide alert sink, by name: its kind, target and options, and
    whether a secret is set (never the secret)."""
    sinks = await store.list_alert_sinks()
    return {"sinks": [s.to_dict() for s in sinks], "log_only": not sinks}


@router.post(
    "/alerts/sinks",
    status_code=201,
    response_model=SinkOut,
    responses={
        **_ADMIN_ERRORS,
        409: {"description": "A sink of that name exists"},
        422: _BAD_SINK,
    },
)
async def add_sink(body: NewSink, store: StoreDep, user: Admin) -> dict[str, Any]:
    """Store a sink every process delivers alerts to, checked as ``vq alerts sinks add``
    checks it (a bad field is a 422 naming it, and nothing is stored)."""
    spec = sink_spec(body)
    try:
        info = await store.add_alert_sink(spec, ActionBy(user.label, "api"))
    except AlertSinkExists as exc:
        raise HTTPException(409, str(exc)) from None
    log.info("alert sink %s (%s) added by %s via api", info.name, info.kind, user.label)
    return info.to_dict()


@router.delete(
    "/alerts/sinks/{name}",
    response_model=Removed,
    responses={
        **_ADMIN_ERRORS,
        404: {"description": "No sink of that name"},
        422: {"description": "Not a sink name"},
    },
)
async def remove_sink(name: SinkName, store: StoreDep, user: Admin) -> dict[str, Any]:
    """Remove a sink: alerts stop going there at once (its past deliveries stay listed)."""
    if not await store.remove_alert_sink(name):
        raise HTTPException(404, f"name: no alert sink named {name!r}")
    log.info("alert sink %s removed by %s via api", name, user.label)
    return {"removed": name}


@router.post(
    "/alerts/test",
    response_model=TestSent,
    responses={
        **_ADMIN_ERRORS,
        503: {"description": "This web process cannot load its sink plugins"},
    },
)
async def send_test(
    request: Request, store: StoreDep, settings: SettingsDep, user: Admin
) -> dict[str, Any]:
    """Send a test notification to every sink, the installation's and this process's own
    (the log sink always), and answer each one's outcome after its retries. A failed sink
    is an outcome, not an error: the answer is 200 with ``all_sent`` false. Each attempt
    is recorded like any notification's."""
    try:
        pm = _plugin_manager(request, settings)
        engine = AlertEngine(
            store, settings, collect_sinks(pm, settings), sink_builder(pm, settings)
        )
        outcomes = await engine.send_test(f"{user.label} (api)")
    except ConfigError as exc:
        raise HTTPException(503, f"cannot send a test from this process: {exc}") from None
    deliveries = [o.to_dict() for o in outcomes]
    return {"deliveries": deliveries, "all_sent": all(o.outcome == "sent" for o in outcomes)}


@router.get(
    "/alerts/deliveries",
    response_model=DeliveryList,
    responses={
        401: {"description": "No valid token or session"},
        422: {"description": "A malformed parameter; `detail` names it"},
    },
)
async def list_deliveries(
    store: StoreDep,
    user: Reader,
    limit: Annotated[
        int, Query(ge=1, le=5000, description="the newest attempts read, over all sinks")
    ] = 200,
) -> dict[str, Any]:
    """The newest delivery attempts (``sent``, ``retried``, ``failed``) grouped per sink,
    each sink's newest first, with its latest outcome."""
    return {"sinks": _per_sink(await store.list_alert_deliveries(limit))}
