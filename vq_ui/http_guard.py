"""What every request meets first: security headers on each answer, credentials checked
before a mutating API request's body is read, and a cap on the size of any body.

Both are pure ASGI middleware, so nothing reads or buffers a body before they decide:
FastAPI parses a route's body before its dependencies run, so without the guard a
client without credentials could make the server read and parse 50 MB before its 401.
Who is asking is decided by ``vq_ui.auth.access.require``, the same code path as the
routes' own check (its answer is cached in the request scope, so it runs once).

Setting (``[plugin_config.ui]`` in vq.toml or ``VQ_PLUGIN_CONFIG__UI__MAX_BODY_BYTES``):
``max_body_bytes`` (1048576): the largest request body accepted, on ``Content-Length``
and while a chunked body streams in; a larger one gets 413.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vq_core.config import Settings
from vq_ui.api.errors import error_response
from vq_ui.auth.access import require

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_API_PREFIX = "/api/"

# The admin page is NiceGUI (Vue and Quasar): it needs inline scripts and styles, and
# Vue compiles the components' templates in the browser, hence 'unsafe-eval'. Every
# script, style, font and connection (the page's websocket too) is this origin's;
# videos and thumbnails come from the video services, so from any http(s) origin.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob: http: https:",
        "media-src 'self' blob: http: https:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
# same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on
# form posts, and the sign-in form's cross-site check would refuse its own page.
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
)


class HttpConfig(BaseModel):
    """The HTTP options under ``[plugin_config.ui]`` (other keys there are ignored)."""

    model_config = ConfigDict(extra="ignore")

    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpConfig:
        """Read the options; a bad one raises ``ValueError`` naming it."""
        try:
            return cls.model_validate(settings.plugin_settings("ui"))
        except ValidationError as exc:
            from vq_core.validation import describe_validation_error

            raise ValueError(f"plugin_config.ui: {describe_validation_error(exc)}") from None


class SecurityHeaders:
    """Adds ``SECURITY_HEADERS`` to every HTTP answer that does not set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def too_large(limit: int) -> HTTPException:
    """The 413 of a body over ``limit`` bytes."""
    return HTTPException(413, f"body: larger than max_body_bytes ({limit} bytes)")


class RequestGuard:
    """Credentials first, then the body, never more of it than ``max_body_bytes``.

    A mutating request under ``/api/`` is answered 401 (or 403 for a cross-site cookie
    write) before one byte of its body is read. Any request whose ``Content-Length``
    is over the cap gets 413 unread; a chunked one gets 413 as soon as what arrived
    passes the cap, raised from ``receive`` so the route's body parsing stops there.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._who = require("read")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            if scope["method"] not in _SAFE_METHODS and scope["path"].startswith(_API_PREFIX):
                await self._who(Request(scope))
            declared = Headers(scope=scope).get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                raise too_large(self.max_body_bytes)
        except HTTPException as exc:
            await error_response(exc.status_code, exc.detail, exc.headers)(scope, receive, send)
            return
        await self.app(scope, self._limited(receive), send)

    def _limited(self, receive: Receive) -> Receive:
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise too_large(self.max_body_bytes)
            return message

        return limited_receive


def install(app: FastAPI, settings: Settings) -> HttpConfig:
    """Add the guard and the headers to ``app``; call it after ``access.install`` so the
    headers wrap everything, the guard's own answers included."""
    config = HttpConfig.from_settings(settings)
    app.add_middleware(RequestGuard, max_body_bytes=config.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return config
