"""Shared plumbing of the HTTP video-service clients: error mapping, result and payload checks.

Every client maps a failure the same way (see docs/services.md):

=============  ======================================================  =========
category       cause                                                   retried
=============  ======================================================  =========
TIMEOUT        connect, read, write or pool timeout; a 504 answer      yes
API_ERROR      any other 5xx                                           yes
RATE_LIMITED   429 (Retry-After, seconds or HTTP date, is honoured)    yes
NETWORK        refused, reset, dropped connection, DNS                 yes
INVALID_INPUT  any other 4xx, or a payload that fails validation       no
BAD_RESPONSE   2xx that is not a JSON object or has no usable URL      yes
UNKNOWN        anything else                                           yes
=============  ======================================================  =========
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vq_core import hookimpl, tracing
from vq_core.config import ConfigError
from vq_core.errors import ServiceError
from vq_core.models import ClaimedJob, ErrorCategory

# httpx is imported where a request is made or read, not with the plugin: every worker
# loads the plugins, and one whose services make no HTTP call does not need httpx (about
# 9 MB of memory with what it imports).
if TYPE_CHECKING:
    import httpx

EXCERPT_CHARS = 500
MIN_LENGTH_S = 5.0
MAX_LENGTH_S = 600.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 600.0


def excerpt(text: str | bytes | None, limit: int = EXCERPT_CHARS) -> str | None:
    """The first ``limit`` characters of a body, decoded leniently; ``None`` when empty."""
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text[: limit * 4].decode("utf-8", errors="replace")
    return text[:limit] or None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    A date in the past means "now" (0); an unparseable value is ignored (``None``).
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _server_message(response: httpx.Response) -> str | None:
    """The ``error`` or ``message`` field of a JSON error body, if there is one."""
    import httpx  # loaded already: there is a response

    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError, httpx.ResponseNotRead):
        return None
    if isinstance(data, Mapping):
        for key in ("error", "message", "detail"):
            if data.get(key):
                return str(data[key])[:200]
    return None


def _body_excerpt(response: httpx.Response) -> str | None:
    import httpx  # loaded already: there is a response

    try:
        return excerpt(response.text)
    except httpx.ResponseNotRead:
        # A streamed answer whose body we chose not to read (a large video).
        return None


def error_from_response(response: httpx.Response, *, service: str, call: str) -> ServiceError:
    """The categorised error of a non-2xx answer (call only for non-2xx responses)."""
    status = response.status_code
    retry_after: float | None = None
    if status == 429:
        category = ErrorCategory.RATE_LIMITED
        retry_after = parse_retry_after(response.headers.get("retry-after"))
    elif status == 504:
        # A gateway (or a render with a time limit) gave up waiting: slow, not broken.
        category = ErrorCategory.TIMEOUT
    elif status >= 500:
        category = ErrorCategory.API_ERROR
    elif 400 <= status < 500:
        category = ErrorCategory.INVALID_INPUT
    else:
        # 1xx/3xx reaching us means redirects are off or the server is confused.
        category = ErrorCategory.BAD_RESPONSE
    detail = _server_message(response)
    message = f"{service}: {call} answered {status}" + (f": {detail}" if detail else "")
    return ServiceError(
        category,
        message,
        service=service,
        call=call,
        status_code=status,
        body_excerpt=_body_excerpt(response),
        retry_after=retry_after,
    )


def error_from_exception(exc: Exception, *, service: str, call: str) -> ServiceError:
    """The categorised error of a request that got no (complete) answer."""
    import httpx  # see the module's imports

    if isinstance(exc, httpx.TimeoutException):
        category = ErrorCategory.TIMEOUT
        what = f"timed out ({type(exc).__name__})"
    elif isinstance(exc, httpx.TransportError | OSError):
        # RemoteProtocolError lands here too: the peer closed the connection mid-answer.
        category = ErrorCategory.NETWORK
        what = f"network error ({type(exc).__name__}: {exc or 'no detail'})"
    else:
        category = ErrorCategory.UNKNOWN
        what = f"failed ({type(exc).__name__}: {exc})"
    return ServiceError(category, f"{service}: {call} {what}", service=service, call=call)


@hookimpl
def vq_categorise_error(
    exc: BaseException, job: ClaimedJob, category: ErrorCategory
) -> ErrorCategory | None:
    """Categorise raw httpx errors that a service let through (``raise_for_status()``,
    an unwrapped timeout), which the core alone would call ``UNKNOWN``."""
    if category is not ErrorCategory.UNKNOWN or "httpx" not in sys.modules:
        # Without httpx loaded, exc cannot be one of its errors.
        return None
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        return error_from_response(exc.response, service="?", call="?").category
    if isinstance(exc, httpx.HTTPError):
        return error_from_exception(exc, service="?", call="?").category
    return None


def bad_response(response: httpx.Response, why: str, *, service: str, call: str) -> ServiceError:
    """A 2xx answer we cannot use."""
    return ServiceError(
        ErrorCategory.BAD_RESPONSE,
        f"{service}: {call} answered {response.status_code} but {why}",
        service=service,
        call=call,
        status_code=response.status_code,
        body_excerpt=_body_excerpt(response),
    )


def is_http_url(value: object) -> bool:
    """Whether ``value`` is an absolute http(s) URL with a host."""
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def json_object(
    response: httpx.Response, *, service: str, call: str, url_field: str | None = "video_url"
) -> dict[str, Any]:
    """The JSON object of a response, or the categorised error for it.

    :param url_field: a field that must hold an http(s) URL (``None`` to skip the check).
    :raises ServiceError: non-2xx, not JSON, not an object, or no usable URL.
    """
    if not response.is_success:
        raise error_from_response(response, service=service, call=call)
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError):
        raise bad_response(response, "the body is not JSON", service=service, call=call) from None
    if not isinstance(data, dict):
        raise bad_response(response, "the body is not a JSON object", service=service, call=call)
    if url_field is not None and not is_http_url(data.get(url_field)):
        why = f"{url_field} is missing or not an http(s) URL"
        raise bad_response(response, why, service=service, call=call)
    return data


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: Mapping[str, Any],
    *,
    service: str,
    call: str,
    headers: Mapping[str, str] | None = None,
    url_field: str | None = "video_url",
) -> dict[str, Any]:
    """POST ``body`` as JSON and return the checked JSON object of a 2xx answer.
    With traces on, the request carries the current span's ``traceparent``, so the
    service's own traces join the job's.

    :raises ServiceError: every failure, categorised (see the module docstring).
    """
    import httpx  # loaded already: there is a client

    sent = dict(headers or {})
    tracing.inject(sent)
    try:
        response = await client.post(url, json=dict(body), headers=sent)
    except httpx.HTTPError as exc:
        raise error_from_exception(exc, service=service, call=call) from exc
    return json_object(response, service=service, call=call, url_field=url_field)


async def get_ok(client: httpx.AsyncClient, url: str, timeout: float = 5.0) -> bool:
    """Whether ``GET url`` answers 2xx within ``timeout`` seconds (a health check)."""
    import httpx  # loaded already: there is a client

    try:
        response = await client.get(url, timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.is_success


def make_client(
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    headers: Mapping[str, str] | None = None,
) -> httpx.AsyncClient:
    """An ``AsyncClient`` with a short connect timeout and a long read timeout.

    A render can take ten minutes, but a service that does not accept the connection
    within seconds is down, and the job should be retried elsewhere soon.
    """
    import httpx  # on first use: see the module's imports

    timeout = httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout)
    return httpx.AsyncClient(timeout=timeout, headers=dict(headers or {}))


# -- configuration --------------------------------------------------------------------


def base_url_option(options: Mapping[str, Any], key: str, plugin: str) -> str | None:
    """An http(s) base URL from a plugin's options without its trailing slash, or ``None``.

    :raises ConfigError: the option is set but is not an http(s) URL.
    """
    value = options.get(key)
    if value is None or value == "":
        return None
    if not is_http_url(value):
        raise ConfigError(f"plugin_config.{plugin}.{key}: must be an http(s) URL, got {value!r}")
    return str(value).rstrip("/")


def float_option(options: Mapping[str, Any], key: str, default: float, plugin: str) -> float:
    """A positive number from a plugin's options (environment values arrive as strings)."""
    value = options.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ConfigError(f"plugin_config.{plugin}.{key}: must be a positive number, got {value!r}")
    return number


def job_types_option(
    options: Mapping[str, Any], default: Iterable[str], plugin: str
) -> tuple[str, ...]:
    """Job types from a list or a comma-separated string."""
    value = options.get("job_types", None)
    if value is None:
        return tuple(default)
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"plugin_config.{plugin}.job_types: must be a list of job types")
    return tuple(v for v in value if v)


def client_options(options: Mapping[str, Any], plugin: str) -> dict[str, Any]:
    """The options every HTTP service client takes: job types, timeouts, API key."""
    api_key = options.get("api_key")
    return {
        "job_types": job_types_option(options, (), plugin),
        "connect_timeout": float_option(
            options, "connect_timeout", DEFAULT_CONNECT_TIMEOUT, plugin
        ),
        "read_timeout": float_option(options, "read_timeout", DEFAULT_READ_TIMEOUT, plugin),
        "api_key": str(api_key) if api_key else None,
    }


# -- payload validation ---------------------------------------------------------------


class DoubtPayload(BaseModel):
    """What the video services read from a job's payload; unknown keys are kept and ignored."""

    model_config = ConfigDict(extra="allow")

    question: str | None = None
    topic: str | None = None
    style: str = Field(default="detailed", min_length=1, max_length=100)
    length: float = Field(default=60.0, ge=MIN_LENGTH_S, le=MAX_LENGTH_S)
    voice: str = Field(default="default", min_length=1, max_length=100)
    subject: str | None = Field(default=None, max_length=100)
    animate: bool | None = None
    # What the video says after the question (spoken and captioned by renderers that can).
    explanation: str | None = Field(default=None, max_length=5000)
    speed: float = Field(default=1.0, ge=0.5, le=2.0)

    @field_validator("explanation", mode="before")
    @classmethod
    def _strip_explanation(cls, value: Any) -> Any:
        # Stripped before the length check, so 5000 counts the words, not the margins.
        return (value.strip() or None) if isinstance(value, str) else value

    @field_validator("question", "topic")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return " ".join(value.split()) or None

    @field_validator("length", "speed", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a number")
        return value

    @model_validator(mode="after")
    def _has_input(self) -> DoubtPayload:
        if not (self.question or self.topic):
            raise ValueError("question or topic is required (a non-empty string)")
        return self

    @property
    def input(self) -> str:
        """The text to explain: the question, else the topic."""
        return self.question or self.topic or ""


def validate_payload(payload: Mapping[str, Any], *, service: str) -> DoubtPayload:
    """Check a job's payload once, before any request is made.

    :raises ServiceError: ``INVALID_INPUT`` naming each bad field (``payload.length: ...``).
    """
    try:
        return DoubtPayload.model_validate(dict(payload))
    except ValidationError as exc:
        problems = "; ".join(
            f"payload.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            if err["loc"]
            else f"payload: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ServiceError(
            ErrorCategory.INVALID_INPUT,
            f"{service}: invalid payload: {problems}",
            service=service,
            call="validate payload",
            body_excerpt=excerpt(json.dumps(dict(payload), default=str)),
        ) from None
