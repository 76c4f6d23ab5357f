"""Access control for the API and the pages: who is asking, may they, and the login flow.

A request is authenticated by ``Authorization: Bearer <token>`` (machines) or by the
session cookie ``vq_session`` that ``POST /login`` sets (people). The cookie carries
the random secret of a server-side session (``vq_ui.auth.sessions``), signed with a key
kept in ``vq.app_secrets``, so every app instance behind a load balancer accepts the
others' sessions. The session row and its user are read on every request, so signing
out (``POST /logout``), a new password, a role change and disabling the user end the
session at once.

The client address (for the sign-in limit and the session list) is the TCP peer's,
unless the peer is one of ``trusted_proxies``: then it is the rightmost address of
``X-Forwarded-For`` that is not itself a trusted proxy (uvicorn's
``ProxyHeadersMiddleware``, which also takes ``X-Forwarded-Proto`` from them).

Settings (``[plugin_config.ui]`` in vq.toml or ``VQ_PLUGIN_CONFIG__UI__KEY``):
``session_max_age_s`` (43200), ``login_max_failures`` (5), ``login_window_s`` (300),
``cookie_secure`` (false; the cookie is Secure anyway when the request came over https),
``metrics_public`` (false: ``/api/v1/metrics`` needs a token or a session),
``trusted_proxies`` (none: addresses or networks of reverse proxies),
``token_cache_s`` (1.0: how long a process trusts an API token it verified in the
database; a revocation elsewhere takes effect here within that time, one made through
this process at once; 0 looks every request's token up, see ``users.TokenCache``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, ValidationError, field_validator
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from vq_core.config import Settings
from vq_core.store import Store
from vq_ui.auth import sessions, users
from vq_ui.auth.roles import ROLE_CAN, Role, User, can

__all__ = [
    "ROLE_CAN",
    "SESSION_COOKIE",
    "AuthConfig",
    "AuthState",
    "Role",
    "User",
    "can",
    "current_user",
    "install",
    "require",
]

SESSION_COOKIE = "vq_session"
SECRET_NAME = "session_key"
_SCOPE_KEY = "vq.auth"
_USER_KEY = "vq.user"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AuthConfig(BaseModel):
    """The auth options under ``[plugin_config.ui]`` (other keys there are ignored)."""

    model_config = ConfigDict(extra="ignore")

    session_max_age_s: int = Field(default=12 * 3600, ge=60)
    login_max_failures: int = Field(default=5, ge=1)
    login_window_s: float = Field(default=300.0, gt=0)
    cookie_secure: bool = False
    metrics_public: bool = False
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list)
    # At most 60 s: a revocation made by another process must not wait longer than that.
    token_cache_s: float = Field(default=1.0, ge=0, le=60)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies_from_text(cls, value: Any) -> Any:
        # From VQ_PLUGIN_CONFIG__UI__TRUSTED_PROXIES the list arrives as text: JSON, or
        # addresses separated by commas.
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                raise ValueError("not a JSON list of addresses") from None
        return [part.strip() for part in text.split(",") if part.strip()]

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthConfig:
        """Read the options; a bad one raises ``ValueError`` naming it."""
        try:
            return cls.model_validate(settings.plugin_settings("ui"))
        except ValidationError as exc:
            from vq_core.validation import describe_validation_error

            raise ValueError(f"plugin_config.ui: {describe_validation_error(exc)}") from None


class AuthState:
    """What the auth code needs at request time: the store, the options, the signing key
    (read from the database on first use unless given)."""

    def __init__(self, store: Store, config: AuthConfig, secret: str | None = None) -> None:
        self.store = store
        self.config = config
        self._secret = secret
        self._lock = asyncio.Lock()
        self.tokens = users.TokenCache(store, config.token_cache_s)

    @property
    def secret(self) -> str | None:
        """The session signing key, once known."""
        return self._secret

    async def load_secret(self) -> str:
        """The session signing key, created in the database by the first instance."""
        if self._secret is None:
            async with self._lock:
                if self._secret is None:
                    self._secret = await users.shared_secret(self.store, SECRET_NAME)
        return self._secret

    async def serializer(self) -> URLSafeTimedSerializer:
        """Signs and checks session cookies."""
        return URLSafeTimedSerializer(await self.load_secret(), salt="vq-session")

    def derived_secret(self, purpose: str) -> str:
        """A key for another purpose (NiceGUI's storage) derived from the session key, or
        a per-process random one while the session key is not loaded yet."""
        base = self._secret or _PROCESS_SECRET
        return hmac.new(base.encode(), purpose.encode(), hashlib.sha256).hexdigest()


_PROCESS_SECRET = users.generate_password() + users.generate_password()


class _ScopeInjector:
    """Puts the auth state in every request's scope, so pages of mounted sub-apps (NiceGUI)
    reach it through ``current_user(request)`` as the API's routes do."""

    def __init__(self, app: ASGIApp, state: AuthState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope[_SCOPE_KEY] = self.state
        await self.app(scope, receive, send)


def auth_state(request: Request) -> AuthState:
    """The auth state of the app serving ``request``."""
    state = request.scope.get(_SCOPE_KEY) or getattr(request.app.state, "vq_auth", None)
    if not isinstance(state, AuthState):
        raise RuntimeError("vq_ui.auth.access.install(app, ...) was not called for this app")
    return state


async def current_user(request: Request) -> User | None:
    """Who made the request (bearer token or session cookie), or ``None``.

    A request that sends an ``Authorization`` header is judged by it alone: a bad token
    is not rescued by a cookie.
    """
    if _USER_KEY in request.scope:
        cached: User | None = request.scope[_USER_KEY]
        return cached
    state = auth_state(request)
    user: User | None = None
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            user = await state.tokens.verify(token.strip())
    else:
        user = await _session_user(state, request.cookies.get(SESSION_COOKIE))
    request.scope[_USER_KEY] = user
    return user


async def _session_secret(state: AuthState, cookie: str | None) -> str | None:
    """The session secret a cookie carries, if its signature is ours and not too old."""
    if not cookie:
        return None
    serializer = await state.serializer()
    try:
        data = serializer.loads(cookie, max_age=state.config.session_max_age_s)
    except BadSignature:  # also SignatureExpired
        return None
    # Cookies from before server-side sessions ({"u": ..., "f": ...}) carry no "s".
    if not isinstance(data, dict) or not isinstance(data.get("s"), str):
        return None
    secret: str = data["s"]
    return secret


async def _session_user(state: AuthState, cookie: str | None) -> User | None:
    secret = await _session_secret(state, cookie)
    if secret is None:
        return None
    return await sessions.session_user(state.store, secret)


def _same_origin(request: Request) -> bool:
    """A browser sends Origin on cross-site POSTs; refuse those when they ride a cookie."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def require(action: str) -> Callable[[Request], Awaitable[User]]:
    """A FastAPI dependency that returns the user, or raises 401 without valid credentials
    and 403 when their role may not perform ``action`` (``read``, ``act``, ``admin``)."""
    if action not in ROLE_CAN:
        raise ValueError(f"unknown action {action!r}; use one of {', '.join(ROLE_CAN)}")

    async def dependency(request: Request) -> User:
        user = await current_user(request)
        if user is None:
            raise HTTPException(
                401,
                "authentication required: send Authorization: Bearer <token> or sign in at /login",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not user.can(action):
            raise HTTPException(403, f"role {user.role.value} may not {action}")
        cookie_write = user.via == "session" and request.method not in _SAFE_METHODS
        if cookie_write and not _same_origin(request):
            raise HTTPException(403, "cross-site request refused")
        return user

    return dependency


# -- login and logout ---------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · vq</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f4f5f7; margin: 0; }}
form {{ max-width: 20rem; margin: 12vh auto; background: #fff; padding: 2rem;
        border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.15); }}
h1 {{ font-size: 1.3rem; margin: 0 0 1rem; }}
label {{ display: block; margin: .8rem 0 .2rem; font-size: .9rem; }}
input {{ width: 100%; box-sizing: border-box; padding: .5rem; font-size: 1rem; }}
button {{ margin-top: 1.2rem; width: 100%; padding: .6rem; font-size: 1rem;
          background: #1f6feb; color: #fff; border: 0; border-radius: 4px; cursor: pointer; }}
.error {{ color: #b42318; background: #fef3f2; padding: .5rem; border-radius: 4px; }}
</style></head>
<body><form method="post" action="/login">
<h1>vq · sign in</h1>
{error}
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required autofocus
       value="{username}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<input type="hidden" name="next" value="{next}">
<button type="submit" id="submit">Sign in</button>
</form></body></html>
"""


def login_page(error: str | None = None, username: str = "", next_path: str = "") -> str:
    """The sign-in form, with an error message after a failed attempt."""
    return _PAGE.format(
        error=f'<p class="error" id="error" role="alert">{html.escape(error)}</p>' if error else "",
        username=html.escape(username),
        next=html.escape(next_path),
    )


def safe_next(value: str | None, default: str = "/queue") -> str:
    """Where to go after signing in: a local path only, never another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in value):
        return default
    return value


def _client_ip(request: Request) -> str:
    # The peer, or what a trusted proxy said the client was (install's middleware).
    return request.client.host if request.client else "unknown"


async def _login(request: Request) -> Response:
    state = auth_state(request)
    form = await request.form()
    username = str(form.get("username") or "").strip()[:200]
    password = str(form.get("password") or "")
    next_path = safe_next(str(form.get("next") or ""))

    def page(error: str, status: int, headers: dict[str, str] | None = None) -> HTMLResponse:
        return HTMLResponse(login_page(error, username, next_path), status, headers)

    if not _same_origin(request):
        return page("Cross-site sign-in refused.", 403)
    if not username or not password:
        return page("Enter a username and a password.", 400)
    if not users.USERNAME.match(username):
        # No account can have this name (and PostgreSQL could not store a NUL in it):
        # the answer to a wrong password, without counting or hashing anything.
        return page("Wrong username or password.", 401)
    ip, cfg = _client_ip(request), state.config
    # Counted before the password is checked, in one step with the check: concurrent
    # attempts cannot all pass a count that none of them has added to yet.
    wait = await users.admit_login_attempt(
        state.store, username, ip, cfg.login_max_failures, cfg.login_window_s
    )
    if wait > 0:
        seconds = int(wait + 0.999)
        return page(
            f"Too many failed attempts; try again in {seconds} s.",
            429,
            {"Retry-After": str(seconds)},
        )
    user = await users.verify_password(state.store, username, password)
    if user is None:
        return page("Wrong username or password.", 401)  # already counted
    await users.clear_login_failures(state.store, username, ip)
    secret = await sessions.start_session(
        state.store,
        user.username,
        cfg.session_max_age_s,
        ip,
        request.headers.get("user-agent", ""),
    )
    if secret is None:  # disabled between the password check and now
        return page("Wrong username or password.", 401)
    return await _signed_in(request, state, secret, next_path)


async def _signed_in(request: Request, state: AuthState, secret: str, next_path: str) -> Response:
    cookie = (await state.serializer()).dumps({"s": secret})
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=state.config.session_max_age_s,
        httponly=True,
        samesite="lax",
        secure=state.config.cookie_secure or request.url.scheme == "https",
        path="/",
    )
    return response


async def _logout(request: Request) -> Response:
    if not _same_origin(request):
        return PlainTextResponse("cross-site request refused", 403)
    state = auth_state(request)
    secret = await _session_secret(state, request.cookies.get(SESSION_COOKIE))
    if secret is not None:
        await sessions.end_session(state.store, secret)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


def auth_router() -> APIRouter:
    """``/login``, ``/logout`` and the ``/admin`` shortcut."""
    router = APIRouter(include_in_schema=False)

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(next: str | None = None) -> HTMLResponse:
        return HTMLResponse(login_page(next_path=safe_next(next)))

    @router.post("/login")
    async def login(request: Request) -> Response:
        return await _login(request)

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        return await _logout(request)

    # Any site can make a browser GET a URL (an <img>), so signing out is POST only.
    # Said here, not left to the router: NiceGUI, mounted at "/", would answer a GET.
    @router.get("/logout")
    async def logout_get() -> Response:
        return PlainTextResponse("sign out with POST /logout", 405, {"Allow": "POST"})

    @router.get("/admin")
    async def admin() -> RedirectResponse:
        return RedirectResponse("/queue", status_code=307)

    return router


def install(app: FastAPI, settings: Settings, store: Store, secret: str | None = None) -> AuthState:
    """Give ``app`` the auth state, the scope injector, the forwarded-header handling of
    ``trusted_proxies`` and the login routes."""
    state = AuthState(store, AuthConfig.from_settings(settings), secret)
    app.state.vq_auth = state
    app.add_middleware(_ScopeInjector, state=state)
    # Outside the scope injector and the routes, so they all see the client's address.
    # With no trusted proxies it would trust nobody and change nothing: left out then,
    # one layer less on every request.
    if state.config.trusted_proxies:
        app.add_middleware(
            ProxyHeadersMiddleware,
            trusted_hosts=[str(network) for network in state.config.trusted_proxies],
        )
    app.include_router(auth_router())
    return state
