"""Access control: password and token storage, login, sessions, rate limiting, logout."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest
from fastapi import FastAPI
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from starlette.requests import Request

from vq_core.config import Settings
from vq_core.models import NewJob
from vq_core.store import Store
from vq_ui.app import create_app
from vq_ui.auth import users
from vq_ui.auth.access import SESSION_COOKIE, auth_state, safe_next

pytest_plugins = ["support.api"]  # app, client, tokens
BASE = "http://127.0.0.1:8080"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


PASSWORD = "correct horse battery"


@pytest.fixture
async def people(store: Store) -> None:
    """One user per role, all with the same password."""
    for role in ("admin", "operator", "viewer"):
        await users.create_user(store, role, PASSWORD, role)


async def login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD, **extra: str
) -> httpx.Response:
    return await client.post("/login", data={"username": username, "password": password, **extra})


# -- storage ------------------------------------------------------------------------


async def test_passwords_are_stored_as_argon2_hashes(store: Store) -> None:
    await users.create_user(store, "ann", PASSWORD, "viewer")
    stored = await store.pool.fetchval("SELECT password_hash FROM vq.users WHERE username = 'ann'")
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_tokens_are_stored_hashed(store: Store) -> None:
    new = await users.create_token(store, "ci", "operator")
    rows = await store.pool.fetch("SELECT * FROM vq.api_tokens")
    dumped = repr([dict(r) for r in rows])
    assert new.token not in dumped
    assert rows[0]["token_hash"] == hashlib.sha256(new.token.encode()).hexdigest()
    assert (await users.verify_token(store, new.token)) is not None
    assert (await users.verify_token(store, new.token + "x")) is None


async def test_token_use_is_recorded(store: Store) -> None:
    new = await users.create_token(store, "ci", "viewer")
    assert (await users.list_tokens(store))[0].last_used_at is None
    await users.verify_token(store, new.token)
    assert (await users.list_tokens(store))[0].last_used_at is not None


async def test_first_admin_is_created_once(store: Store) -> None:
    password = await users.ensure_first_admin(store)
    assert password is not None and len(password) >= 16
    assert await users.ensure_first_admin(store) is None
    user = await users.verify_password(store, "admin", password)
    assert user is not None and user.role == "admin"


async def test_no_first_admin_when_users_exist(store: Store) -> None:
    await users.create_user(store, "ann", PASSWORD, "viewer")
    assert await users.ensure_first_admin(store) is None
    assert [u.username for u in await users.list_users(store)] == ["ann"]


async def test_bad_user_fields_name_the_field(store: Store) -> None:
    with pytest.raises(ValueError, match=r"^username:"):
        await users.create_user(store, "a b", PASSWORD, "viewer")
    with pytest.raises(ValueError, match=r"^password:"):
        await users.create_user(store, "ann", "short", "viewer")
    with pytest.raises(ValueError, match=r"^role:"):
        await users.create_user(store, "ann", PASSWORD, "boss")
    with pytest.raises(ValueError, match=r"^name:"):
        await users.create_token(store, "a b", "viewer")


# -- login and logout ---------------------------------------------------------------


async def test_login_page_is_a_plain_form(client: httpx.AsyncClient) -> None:
    r = await client.get("/login", params={"next": '/queue?x="><script>'})
    assert r.status_code == 200
    assert '<form method="post" action="/login">' in r.text
    assert "<script>" not in r.text  # the next path is escaped
    assert 'name="next" value="/queue?x=&quot;&gt;&lt;script&gt;"' in r.text


@pytest.mark.usefixtures("people")
async def test_login_sets_a_safe_cookie_and_redirects(client: httpx.AsyncClient) -> None:
    r = await login(client, "operator", next="/queue?status=failed")
    assert r.status_code == 303
    assert r.headers["location"] == "/queue?status=failed"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    me = await client.get("/api/v1/me")
    assert me.json() == {"username": "operator", "role": "operator", "via": "session"}


@pytest.mark.parametrize(
    "next_path", ["", "https://127.0.0.1:9/x", "//127.0.0.1:9/x", "/\\127.0.0.1", "queue"]
)
def test_only_local_paths_are_followed_after_login(next_path: str) -> None:
    assert safe_next(next_path) == "/queue"


@pytest.mark.usefixtures("people")
async def test_wrong_password_shows_an_error(client: httpx.AsyncClient) -> None:
    r = await login(client, "viewer", "wrong password")
    assert r.status_code == 401
    assert "Wrong username or password." in r.text
    assert "set-cookie" not in r.headers
    unknown = await login(client, "nobody", "wrong password")
    assert unknown.status_code == 401 and "Wrong username or password." in unknown.text
    empty = await login(client, "viewer", "")
    assert empty.status_code == 400


@pytest.mark.usefixtures("people")
async def test_logout_clears_the_cookie(client: httpx.AsyncClient) -> None:
    await login(client, "viewer")
    assert (await client.get("/api/v1/me")).status_code == 200
    r = await client.post("/logout")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert f'{SESSION_COOKIE}=""' in r.headers["set-cookie"]
    assert (await client.get("/api/v1/me")).status_code == 401
    again = await client.post("/logout")  # signed out already: still fine
    assert again.status_code == 303


# -- rate limiting ------------------------------------------------------------------


@pytest.fixture
def strict_app(settings: Settings, store: Store) -> FastAPI:
    strict = settings.model_copy(
        update={"plugin_config": {"ui": {"login_max_failures": 3, "login_window_s": 600}}}
    )
    return create_app(strict, store, admin_page=False)


def client_from(app: FastAPI, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url=BASE)


@pytest.mark.usefixtures("people")
async def test_login_is_rate_limited_per_username_and_address(strict_app: FastAPI) -> None:
    async with client_from(strict_app, "127.0.0.1") as c:
        for _ in range(3):
            assert (await login(c, "viewer", "wrong password")).status_code == 401
        blocked = await login(c, "viewer")  # even the right password waits
        assert blocked.status_code == 429
        assert 590 <= int(blocked.headers["retry-after"]) <= 600
        assert "Too many failed attempts" in blocked.text
        assert (await login(c, "operator")).status_code == 303  # another username
    async with client_from(strict_app, "127.0.0.2") as other:
        assert (await login(other, "viewer")).status_code == 303  # another address


@pytest.mark.usefixtures("people")
async def test_a_successful_login_resets_the_count(strict_app: FastAPI) -> None:
    async with client_from(strict_app, "127.0.0.1") as c:
        for _ in range(2):
            await login(c, "viewer", "wrong password")
        assert (await login(c, "viewer")).status_code == 303
        for _ in range(2):
            assert (await login(c, "viewer", "wrong password")).status_code == 401
        assert (await login(c, "viewer")).status_code == 303


# -- sessions -----------------------------------------------------------------------


async def _session_cookie(client: httpx.AsyncClient, username: str) -> str:
    r = await login(client, username)
    assert r.status_code == 303
    cookie = client.cookies.get(SESSION_COOKIE)
    assert cookie
    return cookie


def _me(client: httpx.AsyncClient, cookie: str) -> httpx.Request:
    return client.build_request("GET", "/api/v1/me", cookies={SESSION_COOKIE: cookie})


@pytest.mark.usefixtures("people")
async def test_tampered_cookies_are_refused(client: httpx.AsyncClient, app: FastAPI) -> None:
    cookie = await _session_cookie(client, "viewer")
    client.cookies.clear()
    assert (await client.send(_me(client, cookie))).status_code == 200
    _, _, rest = cookie.partition(".")
    other = (await _session_cookie(client, "admin")).partition(".")[0]
    client.cookies.clear()
    swapped = f"{other}.{rest}"  # admin's payload under viewer's signature
    assert (await client.send(_me(client, swapped))).status_code == 401
    assert (await client.send(_me(client, cookie[:-2] + "xx"))).status_code == 401
    secret = _secret_of(app, cookie)  # a live session's secret, under another key
    forged = URLSafeTimedSerializer("not the key", salt="vq-session").dumps({"s": secret})
    assert (await client.send(_me(client, forged))).status_code == 401


def _secret_of(app: FastAPI, cookie: str) -> str:
    """The session secret a cookie of ``app`` carries."""
    data = URLSafeTimedSerializer(app.state.vq_auth.secret, salt="vq-session").loads(cookie)
    secret: str = data["s"]
    return secret


class _PastSigner(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 3600


@pytest.mark.usefixtures("people")
async def test_expired_sessions_are_refused(
    settings: Settings, store: Store, client: httpx.AsyncClient, app: FastAPI
) -> None:
    cookie = await _session_cookie(client, "viewer")
    client.cookies.clear()
    state = app.state.vq_auth
    old = URLSafeTimedSerializer(state.secret, salt="vq-session", signer=_PastSigner).dumps(
        {"s": _secret_of(app, cookie)}
    )
    assert (await client.send(_me(client, old))).status_code == 200  # default max age 12 h
    short = settings.model_copy(update={"plugin_config": {"ui": {"session_max_age_s": 600}}})
    app2 = create_app(short, store, admin_page=False)
    async with client_from(app2, "127.0.0.1") as c2:
        assert (await c2.send(_me(c2, old))).status_code == 401


@pytest.mark.usefixtures("people")
async def test_password_change_and_disabling_end_sessions(
    client: httpx.AsyncClient, store: Store
) -> None:
    cookie = await _session_cookie(client, "viewer")
    client.cookies.clear()
    await users.set_password(store, "viewer", "a brand new password")
    assert (await client.send(_me(client, cookie))).status_code == 401
    cookie = await _session_cookie(client, "operator")
    client.cookies.clear()
    await users.update_user(store, "operator", disabled=True)
    assert (await client.send(_me(client, cookie))).status_code == 401
    assert (await login(client, "operator")).status_code == 401


@pytest.mark.usefixtures("people")
async def test_instances_share_the_session_key(
    settings: Settings, store: Store, client: httpx.AsyncClient
) -> None:
    cookie = await _session_cookie(client, "viewer")
    other_instance = create_app(settings, store, admin_page=False)
    async with client_from(other_instance, "127.0.0.1") as c2:
        assert (await c2.send(_me(c2, cookie))).status_code == 200


@pytest.mark.usefixtures("people")
async def test_viewer_session_may_read_but_not_act(client: httpx.AsyncClient, store: Store) -> None:
    job_id = (await store.enqueue(NewJob("doubt"))).id
    await login(client, "viewer")
    assert (await client.get(f"/api/v1/jobs/{job_id}")).status_code == 200
    r = await client.post(f"/api/v1/jobs/{job_id}/cancel")
    assert r.status_code == 403 and r.json()["detail"] == "role viewer may not act"


@pytest.mark.usefixtures("people")
async def test_cookie_writes_must_be_same_origin(client: httpx.AsyncClient, store: Store) -> None:
    job_id = (await store.enqueue(NewJob("doubt"))).id
    await login(client, "operator")
    cross = await client.post(
        f"/api/v1/jobs/{job_id}/cancel", headers={"Origin": "http://127.0.0.1:9999"}
    )
    assert cross.status_code == 403 and cross.json()["detail"] == "cross-site request refused"
    same = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers={"Origin": BASE})
    assert same.status_code == 200 and same.json()["status"] == "cancelled"


@pytest.mark.usefixtures("people")
async def test_cross_site_login_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/login",
        data={"username": "viewer", "password": PASSWORD},
        headers={"Origin": "http://127.0.0.1:9999"},
    )
    assert r.status_code == 403 and "set-cookie" not in r.headers


@pytest.mark.usefixtures("people")
async def test_a_bad_bearer_token_is_not_rescued_by_the_cookie(client: httpx.AsyncClient) -> None:
    await login(client, "admin")
    assert (await client.get("/api/v1/me")).status_code == 200
    assert (await client.get("/api/v1/me", headers=bearer("vq_wrong"))).status_code == 401
    basic = await client.get("/api/v1/me", headers={"Authorization": "Basic YWRtaW46eA=="})
    assert basic.status_code == 401


async def test_require_rejects_unknown_actions() -> None:
    from vq_ui.auth.access import require

    with pytest.raises(ValueError, match="unknown action"):
        require("delete-everything")


def test_auth_state_needs_install() -> None:
    request = Request({"type": "http", "app": FastAPI(), "headers": [], "method": "GET"})
    with pytest.raises(RuntimeError, match="install"):
        auth_state(request)


@pytest.mark.parametrize("id_or_name", ["²", "99999999999999999999999", "0"])
async def test_revoking_an_impossible_token_id_names_it(store: Store, id_or_name: str) -> None:
    with pytest.raises(users.UnknownName, match="no live token"):
        await users.revoke_token(store, id_or_name)
