"""Every check of a submitted job, in one place: ``vq submit``, ``POST /api/v1/jobs``
(one job or a batch) and anything else that enqueues on a client's behalf go through it.

A submission passes two stages, both here:

1. ``JobRequest`` (pydantic) checks the shape: fields, types, lengths, the job type's
   characters, priority names, a zone on ``run_at``, the payload's size and depth.
   The API reports these as 422 with pydantic's per-field errors.
2. ``JobRequest.to_new_job`` checks what the shape allows but PostgreSQL cannot store
   (a NUL or a lone surrogate in any text, NaN or Infinity, a ``run_at`` beyond the
   calendar once moved to UTC) and returns the store's form, ``run_at`` in UTC. The
   API reports these as 400; both stages name the field first.

``parse_payload`` turns the CLI's payload text into the object the API would receive.

Per-type configuration (``vq.job_queue_config``) is checked here too, by
``check_queue_config`` and ``QueueConfigPatch``: the store calls them, so every way of
setting one (``vq types set``, ``PATCH /api/v1/types/{type}``, the admin page) refuses
a timeout that is NaN or Infinity, naming the setting.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from vq_core.errors import InvalidInput
from vq_core.models import NewJob, Priority, QueueConfig
from vq_core.video_service import url_origin

PriorityName = Literal["urgent", "high", "normal", "low"]
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_PAYLOAD_DEPTH = 100
"""Objects and lists inside each other; the payload object itself is level 1."""

_TOO_DEEP = f"nested deeper than {MAX_PAYLOAD_DEPTH} levels"


JobType = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]

# The first version's fields a submission may carry (JobRequest): the one value each may
# hold, and why, as the 422 says it.
_FIRST_VERSION_FIELDS: dict[str, tuple[object, str]] = {
    "status": (
        "queued",
        "a submitted job is always queued: status may only be 'queued' or left out "
        "(the first version's document); a job's state changes through its worker, "
        "cancel and retry",
    ),
    "retry_count": (0, "a submitted job has made no attempts: retry_count may only be 0"),
    "error_message": (None, "a submitted job has no error: error_message may only be null"),
}


class JobRequest(BaseModel):
    """One job as a client submits it; ``to_new_job`` finishes the checks."""

    model_config = ConfigDict(extra="forbid")

    job_type: JobType
    priority: PriorityName = "normal"
    payload: dict[str, Any] = Field(default_factory=dict)
    run_at: datetime | None = None
    max_retries: int | None = Field(default=None, ge=0, le=100)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    group_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="whose job this is (for a doubt, the student): the claim takes turns "
        "between groups, and a type may cap each group's running jobs",
    )
    callback_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=2000,
        description="where vq POSTs the job's outcome when it ends (docs/platform.md); "
        "its origin must be in callbacks.allowed_origins. Default: the type's",
    )

    # The first version's job document (docs/platform.md, "The job document of the
    # first version"): the platform's code sends these as it stands. Each may only say
    # what every new job is anyway, so they change nothing and to_new_job drops them.
    status: Literal["queued"] | None = Field(
        default=None,
        description="the first version's field: a new job is queued, so only 'queued' "
        "is accepted (it changes nothing)",
    )
    retry_count: Literal[0] | None = Field(
        default=None,
        description="the first version's field: a new job has made no attempts, so only 0",
    )
    error_message: None = Field(
        default=None,
        description="the first version's field: a new job has no error, so only null",
    )

    @field_validator("status", "retry_count", "error_message", mode="before")
    @classmethod
    def _first_version_fields(cls, value: Any, info: ValidationInfo) -> Any:
        # Before pydantic's own check: its "Input should be 'queued'" does not say why.
        allowed, why = _FIRST_VERSION_FIELDS[info.field_name or ""]
        if value is not None and not (type(value) is type(allowed) and value == allowed):
            raise PydanticCustomError(
                "first_version_field",
                "{why}; got {got}",
                {"why": why, "got": json.dumps(value, default=str)[:100]},
            )
        return value

    @field_validator("payload")
    @classmethod
    def _payload_limits(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Depth first: json.dumps recurses, and a deep enough payload would raise
        # RecursionError (a 500, a traceback) instead of a message.
        if any(
            depth > MAX_PAYLOAD_DEPTH and isinstance(node, dict | list)
            for depth, node in _json_nodes(value)
        ):
            raise PydanticCustomError("payload_too_deep", _TOO_DEEP)
        if len(json.dumps(value)) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"payload is larger than {MAX_PAYLOAD_BYTES} bytes")
        return value

    @field_validator("run_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("run_at needs a time zone (e.g. 2026-01-01T12:00:00Z)")
        return value

    def to_new_job(self, where: str = "") -> NewJob:
        """The store's form of this request, once PostgreSQL can take every value.

        ``InvalidInput`` otherwise, its message starting with ``where`` (``"3."`` for
        item 3 of a batch) and the field.
        """
        for name in ("job_type", "idempotency_key", "group_key", "callback_url"):
            text = getattr(self, name)
            if text is not None:
                check_text(text, f"{where}{name}")
        if self.callback_url is not None:
            check_callback_url(self.callback_url, None, f"{where}callback_url")
        check_payload(self.payload, f"{where}payload")
        return NewJob(
            job_type=self.job_type,
            payload=self.payload,
            priority=Priority.parse(self.priority),
            run_at=_to_utc(self.run_at, f"{where}run_at"),
            max_retries=self.max_retries,
            idempotency_key=self.idempotency_key,
            group_key=self.group_key,
            callback_url=self.callback_url,
        )


class QueueConfigRequest(BaseModel):
    """A job type's configuration as it may be stored; ``check_queue_config`` uses it."""

    # Strict: it checks a QueueConfig made in Python, where "5" for 5 is a bug.
    model_config = ConfigDict(extra="forbid", strict=True)

    job_type: JobType
    max_retries: int = Field(ge=0)
    # PostgreSQL orders NaN above every number, so "> 0" alone would let it through.
    timeout_s: float = Field(gt=0, allow_inf_nan=False)
    service: str | None = Field(default=None, min_length=1)
    concurrency: int | None = Field(default=None, ge=1, le=10_000)
    paused: bool = False
    max_running: int | None = Field(default=None, ge=1, le=1_000_000)
    max_running_per_group: int | None = Field(default=None, ge=1, le=1_000_000)
    callback_url: str | None = Field(default=None, min_length=1, max_length=2000)


class QueueConfigPatch(BaseModel):
    """A change to a job type's settings (``PATCH /api/v1/types/{type}``, ``vq types
    set``, the admin page): a field left out stays as it is; ``null`` clears a cap or
    the service (the type is then routed by the settings and the services' own
    types)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    paused: bool | None = Field(default=None, description="pause (true) or resume (false)")
    service: str | None = Field(
        default=None, min_length=1, max_length=200, description="the service that renders it"
    )
    timeout_s: float | None = Field(
        default=None, gt=0, le=1e9, allow_inf_nan=False, description="seconds per attempt"
    )
    max_retries: int | None = Field(default=None, ge=0, le=1000)
    concurrency: int | None = Field(
        default=None, ge=1, le=10_000, description="running jobs per worker process"
    )
    max_running: int | None = Field(
        default=None, ge=1, le=1_000_000, description="running jobs across every worker"
    )
    max_running_per_group: int | None = Field(
        default=None, ge=1, le=1_000_000, description="running jobs of one group"
    )
    callback_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=2000,
        description="the callback URL of the type's jobs that name none (null: none)",
    )

    def changes(self) -> dict[str, Any]:
        """The settings this patch names, with their new values."""
        out = {name: getattr(self, name) for name in self.model_fields_set}
        for name in ("paused", "timeout_s", "max_retries"):
            if name in out and out[name] is None:
                raise InvalidInput(f"{name}: may not be null")
        if isinstance(out.get("service"), str):
            check_text(out["service"], "service")
        if isinstance(out.get("callback_url"), str):
            check_text(out["callback_url"], "callback_url")
            check_callback_url(out["callback_url"], None)
        return out


def queue_config_patch(values: Mapping[str, Any]) -> QueueConfigPatch:
    """A ``QueueConfigPatch`` from plain values; ``InvalidInput`` names each bad one."""
    try:
        patch = QueueConfigPatch.model_validate(dict(values))
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc)) from None
    patch.changes()
    return patch


def check_queue_config(config: QueueConfig) -> None:
    """Refuse a configuration a worker cannot use; ``InvalidInput`` names each bad
    setting (``timeout_s: Input should be a finite number``)."""
    values = dataclasses.asdict(config)
    # Bookkeeping the store writes itself, not settings.
    values.pop("updated_at", None)
    values.pop("updated_by", None)
    try:
        QueueConfigRequest.model_validate(values)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc)) from None
    if config.service is not None:
        check_text(config.service, "service")


class ServiceLimitRequest(BaseModel):
    """A service's cluster-wide cap (``PATCH /api/v1/services/{name}``, ``vq services
    set``); ``null`` removes it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_running: int | None = Field(
        ge=1, le=1_000_000, description="running jobs of the service across every worker"
    )


def check_callback_url(
    url: str, allowed_origins: Collection[str] | None, field: str = "callback_url"
) -> None:
    """Refuse a callback URL that is not an absolute http(s) URL or, when
    ``allowed_origins`` is given (``settings.callbacks.allowed_origins``), whose origin
    is not one of them; ``InvalidInput`` names ``field``.

    The same guard as the video check (``vq_core.worker.verification``): the origin is
    read by httpx, the client that sends the callback, so the check and the request
    cannot read the URL differently. The deliverer checks again before each attempt.
    """
    try:
        origin = url_origin(url)
    except ValueError as exc:
        raise InvalidInput(f"{field}: {exc}") from None
    import httpx  # imported by url_origin; here, not at the top, for the same reason

    if httpx.URL(url).userinfo:
        raise InvalidInput(f"{field}: may not carry credentials (user:password@)")
    if httpx.URL(url).port == 0:
        # url_origin reads port 0 as the default port; vq.enqueue refuses it too.
        raise InvalidInput(f"{field}: port 0 is not a port to send to")
    if allowed_origins is None or origin in allowed_origins:
        return
    allowed = ", ".join(sorted(allowed_origins)) or "none"
    raise InvalidInput(
        f"{field}: {origin} is not an allowed callback origin "
        f"(setting callbacks.allowed_origins; allowed: {allowed})"
    )


def parse_payload(text: str) -> Any:
    """The value of a payload given as JSON text (the CLI's ``--payload``).

    Only what keeps it from being read is refused here (bad syntax, nesting too deep
    for Python's json, a number with thousands of digits), with ``InvalidInput`` naming
    ``payload``; ``JobRequest`` words every other problem as it does for the API.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"payload: not valid JSON ({exc.msg} at char {exc.pos})") from None
    except RecursionError:
        raise InvalidInput(f"payload: {_TOO_DEEP}") from None
    except ValueError:
        # The one other ValueError of json.loads: int()'s limit on digits (sys.int_info).
        raise InvalidInput("payload: a number has too many digits") from None


def check_payload(payload: Any, field: str = "payload") -> None:
    """Refuse what PostgreSQL's jsonb cannot store: a NUL or a lone surrogate in any key
    or string, NaN or an infinity (Python's json reads ``NaN``, ``Infinity``, ``1e400``)."""
    for _, node in _json_nodes(payload):
        if isinstance(node, str):
            check_text(node, field)
        elif isinstance(node, float) and not math.isfinite(node):
            raise InvalidInput(f"{field}: numbers must be finite (no NaN, Infinity or 1e400)")


def check_text(text: str, field: str) -> None:
    """Refuse text PostgreSQL cannot store; ``InvalidInput`` names ``field``."""
    # PostgreSQL text and jsonb have no NUL, and its UTF-8 has no lone surrogates
    # (which Python's json reads from "\ud800" and argv holds for undecodable bytes).
    if "\x00" in text:
        raise InvalidInput(f"{field}: text may not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            f"{field}: text may not contain lone surrogates (\\ud800-\\udfff unpaired)"
        ) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each bad field, e.g. ``priority: Input should be 'urgent', ...``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
    )


def parse_job_request(data: dict[str, Any]) -> NewJob:
    """Validate a submitted job (both stages); ``InvalidInput`` names the fields that are wrong."""
    try:
        request = JobRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc)) from None
    return request.to_new_job()


def _json_nodes(value: Any) -> Iterator[tuple[int, Any]]:
    """Every value and object key of a JSON tree with its depth: the tree is 1, the
    values in it 2, and so on; a key has its object's depth.

    A loop, not recursion: the point is to look at trees too deep to recurse into.
    """
    stack: list[tuple[int, Any]] = [(1, value)]
    while stack:
        depth, node = stack.pop()
        yield depth, node
        if isinstance(node, dict):
            stack.extend((depth, key) for key in node)
            stack.extend((depth + 1, child) for child in node.values())
        elif isinstance(node, list):
            stack.extend((depth + 1, child) for child in node)


def _to_utc(value: datetime | None, field: str) -> datetime | None:
    # In UTC the zone offset cannot exceed PostgreSQL's limit (±15:59), and a time that
    # leaves Python's calendar (years 1-9999) when moved there fails here, not in the store.
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{field}: out of range") from None
