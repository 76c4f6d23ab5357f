"""Server-side sessions: a cookie is only as good as its row in vq.sessions.

Signing out, a new password, another role and disabling end a user's sessions; an
admin lists and ends them (API and CLI); expired ones are refused and pruned.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import click
import httpx
import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from fastapi import FastAPI
from itsdangerous import URLSafeTimedSerializer

from vq_core.store import Store
from vq_ui.auth import sessions, users
from vq_ui.auth.access import SESSION_COOKIE
from vq_ui.commands import add_commands

pytest_plugins = ["support.api"]  # app, client, tokens, cheap argon2
BASE = "http://127.0.0.1:8080"
PASSWORD = "correct horse battery"


@pytest.fixture
async def people(store: Store) -> None:
    """One user per role, all with the same password."""
    for role in ("admin", "operator", "viewer"):
        await users.create_user(store, role, PASSWORD, role)


def browser(app: FastAPI, user_agent: str = "test-browser/1.0") -> httpx.AsyncClient:
    """A client with its own cookie jar, as a separate browser would be."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    return httpx.AsyncClient(transport=transport, base_url=BASE, headers={"User-Agent": user_agent})


async def sign_in(client: httpx.AsyncClient, username: str) -> str:
    r = await client.post("/login", data={"username": username, "password": PASSWORD})
    assert r.status_code == 303, r.text
    cookie = client.cookies.get(SESSION_COOKIE)
    assert cookie
    return cookie


async def me_with(client: httpx.AsyncClient, cookie: str) -> int:
    """The status of /api/v1/me with only this cookie (a copy used elsewhere)."""
    request = client.build_request("GET", "/api/v1/me", cookies={SESSION_COOKIE: cookie})
    return (await client.send(request)).status_code


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- what ends a session ------------------------------------------------------------


@pytest.mark.usefixtures("people")
async def test_a_copied_cookie_stops_working_after_sign_out(app: FastAPI) -> None:
    async with browser(app) as mine, browser(app) as thief:
        cookie = await sign_in(mine, "viewer")
        assert await me_with(thief, cookie) == 200
        r = await mine.post("/logout")
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert await me_with(thief, cookie) == 401


@pytest.mark.usefixtures("people")
async def test_sign_out_ends_only_its_own_session(app: FastAPI) -> None:
    async with browser(app) as laptop, browser(app) as phone:
        first = await sign_in(laptop, "viewer")
        second = await sign_in(phone, "viewer")
        await laptop.post("/logout")
        assert await me_with(phone, first) == 401
        assert await me_with(phone, second) == 200


async def test_get_logout_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.get("/logout")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"


@pytest.mark.usefixtures("people")
async def test_cross_site_sign_out_is_refused(app: FastAPI) -> None:
    async with browser(app) as c:
        cookie = await sign_in(c, "viewer")
        r = await c.post("/logout", headers={"Origin": "http://127.0.0.1:9999"})
        assert r.status_code == 403
        assert await me_with(c, cookie) == 200
        same = await c.post("/logout", headers={"Origin": BASE})
        assert same.status_code == 303 and await me_with(c, cookie) == 401


@pytest.mark.usefixtures("people")
@pytest.mark.parametrize(
    "change",
    [{"password": "a brand new password"}, {"role": "operator"}, {"disabled": True}],
    ids=["password", "role", "disable"],
)
async def test_changes_to_the_user_end_their_sessions(
    app: FastAPI, store: Store, change: dict[str, object]
) -> None:
    async with browser(app) as c:
        cookie = await sign_in(c, "viewer")
        other = await sign_in(c, "admin")
        await users.update_user(store, "viewer", **change)  # type: ignore[arg-type]
        assert await me_with(c, cookie) == 401
        assert await me_with(c, other) == 200  # other users keep theirs
    assert await sessions.list_sessions(store, "viewer") == []


@pytest.mark.usefixtures("people")
async def test_an_unchanged_role_keeps_the_sessions(app: FastAPI, store: Store) -> None:
    async with browser(app) as c:
        cookie = await sign_in(c, "viewer")
        await users.update_user(store, "viewer", role="viewer", disabled=False)
        assert await me_with(c, cookie) == 200


@pytest.mark.usefixtures("people")
async def test_re_enabling_a_user_does_not_revive_old_cookies(app: FastAPI, store: Store) -> None:
    async with browser(app) as c:
        cookie = await sign_in(c, "operator")
        await users.update_user(store, "operator", disabled=True)
        await users.update_user(store, "operator", disabled=False)
        assert await me_with(c, cookie) == 401
        fresh = await sign_in(c, "operator")
        assert await me_with(c, fresh) == 200


@pytest.mark.usefixtures("people")
async def test_a_stronger_hash_at_sign_in_keeps_other_sessions(
    app: FastAPI, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with browser(app) as laptop, browser(app) as phone:
        first = await sign_in(laptop, "viewer")
        before = await store.pool.fetchval(
            "SELECT password_hash FROM vq.users WHERE username = 'viewer'"
        )
        stronger = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
        monkeypatch.setattr(users, "_hasher", stronger)
        await sign_in(phone, "viewer")  # the old hash is upgraded on the way
        after = await store.pool.fetchval(
            "SELECT password_hash FROM vq.users WHERE username = 'viewer'"
        )
        assert after != before and not stronger.check_needs_rehash(after)
        assert await me_with(laptop, first) == 200


# -- what a session is ----------------------------------------------------------------


@pytest.mark.usefixtures("people")
async def test_the_database_keeps_only_a_hash_of_the_secret(app: FastAPI, store: Store) -> None:
    async with browser(app) as c:
        cookie = await sign_in(c, "viewer")
    secret = URLSafeTimedSerializer(app.state.vq_auth.secret, salt="vq-session").loads(cookie)["s"]
    rows = [dict(r) for r in await store.pool.fetch("SELECT * FROM vq.sessions")]
    assert secret not in repr(rows)
    assert rows[0]["token_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert rows[0]["user_agent"] == "test-browser/1.0" and rows[0]["ip"] == "127.0.0.1"


@pytest.mark.usefixtures("people")
async def test_a_cookie_of_the_old_kind_is_refused(app: FastAPI) -> None:
    async with browser(app) as c:
        await sign_in(c, "viewer")  # loads the key
        old_kind = URLSafeTimedSerializer(app.state.vq_auth.secret, salt="vq-session").dumps(
            {"u": "viewer", "f": "0123456789abcdef"}
        )
        assert await me_with(c, old_kind) == 401


@pytest.mark.usefixtures("people")
async def test_expired_sessions_are_refused_and_pruned(app: FastAPI, store: Store) -> None:
    async with browser(app) as c:
        cookie = await sign_in(c, "viewer")
        await store.pool.execute("UPDATE vq.sessions SET expires_at = now() - interval '1 s'")
        assert await me_with(c, cookie) == 401
        assert await sessions.list_sessions(store, "viewer") == []
        assert await store.pool.fetchval("SELECT count(*) FROM vq.sessions") == 1
        await sign_in(c, "admin")  # each sign-in deletes the expired sessions
    owners = await store.pool.fetch(
        "SELECT u.username FROM vq.sessions s JOIN vq.users u ON u.id = s.user_id"
    )
    assert [r["username"] for r in owners] == ["admin"]


@pytest.mark.usefixtures("people")
async def test_last_seen_is_recorded(app: FastAPI, store: Store) -> None:
    async with browser(app) as c:
        cookie = await sign_in(c, "viewer")
        await store.pool.execute(
            "UPDATE vq.sessions SET last_seen_at = now() - interval '1 hour',"
            " created_at = now() - interval '1 hour'"
        )
        assert await me_with(c, cookie) == 200
    (session,) = await sessions.list_sessions(store, "viewer")
    assert session.last_seen_at > session.created_at


# -- the admin's view: API ------------------------------------------------------------


@pytest.mark.usefixtures("people")
async def test_an_admin_lists_and_ends_a_users_sessions(app: FastAPI) -> None:
    async with browser(app, "laptop") as laptop, browser(app, "phone") as phone:
        first = await sign_in(laptop, "viewer")
        second = await sign_in(phone, "viewer")
        async with browser(app) as admin:
            await sign_in(admin, "admin")
            r = await admin.get("/api/v1/users/viewer/sessions")
            assert r.status_code == 200
            listed = r.json()["sessions"]
            assert [s["user_agent"] for s in listed] == ["phone", "laptop"]  # newest first
            assert {s["username"] for s in listed} == {"viewer"}
            assert not any(s["current"] for s in listed)
            assert set(listed[0]) == {
                "id", "username", "created_at", "last_seen_at", "expires_at", "ip",
                "user_agent", "current",
            }  # fmt: skip
            own = (await admin.get("/api/v1/users/admin/sessions")).json()["sessions"]
            assert [s["current"] for s in own] == [True]

            ended = await admin.delete(f"/api/v1/sessions/{listed[0]['id']}")
            assert ended.status_code == 200 and ended.json()["user_agent"] == "phone"
            assert await me_with(admin, second) == 401
            assert await me_with(admin, first) == 200
            again = await admin.delete(f"/api/v1/sessions/{listed[0]['id']}")
            assert again.status_code == 404

            await sign_in(phone, "viewer")
            r = await admin.delete("/api/v1/users/viewer/sessions")
            assert r.status_code == 200 and r.json() == {"username": "viewer", "ended": 2}
            assert await me_with(admin, first) == 401
            assert (await admin.get("/api/v1/users/viewer/sessions")).json() == {"sessions": []}


@pytest.mark.usefixtures("people")
async def test_session_routes_are_for_admins(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    for role in ("viewer", "operator"):
        headers = bearer(tokens[role])
        assert (
            await client.get("/api/v1/users/viewer/sessions", headers=headers)
        ).status_code == 403
        assert (
            await client.delete("/api/v1/users/viewer/sessions", headers=headers)
        ).status_code == 403
        assert (await client.delete("/api/v1/sessions/1", headers=headers)).status_code == 403
    assert (await client.get("/api/v1/users/viewer/sessions")).status_code == 401
    admin = bearer(tokens["admin"])
    r = await client.get("/api/v1/users/nobody/sessions", headers=admin)
    assert r.status_code == 404 and r.json()["detail"] == "no user named 'nobody'"
    assert (await client.delete("/api/v1/users/nobody/sessions", headers=admin)).status_code == 404
    assert (await client.delete("/api/v1/sessions/999", headers=admin)).status_code == 404
    assert (await client.delete("/api/v1/sessions/0", headers=admin)).status_code == 422
    r = await client.get("/api/v1/users/viewer/sessions", headers=admin)
    assert r.status_code == 200 and r.json() == {"sessions": []}


@pytest.mark.usefixtures("people")
async def test_a_role_change_through_the_api_signs_the_user_out(
    app: FastAPI, tokens: dict[str, str]
) -> None:
    async with browser(app) as c:
        cookie = await sign_in(c, "operator")
        r = await c.patch(
            "/api/v1/users/operator", json={"role": "viewer"}, headers=bearer(tokens["admin"])
        )
        assert r.status_code == 200 and r.json()["role"] == "viewer"
        assert await me_with(c, cookie) == 401


# -- the admin's view: CLI ------------------------------------------------------------


def ui_cli() -> click.Group:
    group = click.Group("vq")
    add_commands(group)
    return group


@pytest.fixture
def runner(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("VQ_DATABASE_URL", dsn)
    monkeypatch.setenv("VQ_DATA_DIR", str(tmp_path))
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(ui_cli(), list(args), catch_exceptions=False)
    return result.exit_code, result.output


async def invoke_beside(runner: CliRunner, *args: str) -> tuple[int, str]:
    """``invoke`` from an async test: the command runs its own event loop, in a thread."""
    return await asyncio.to_thread(invoke, runner, *args)


@pytest.mark.usefixtures("people")
async def test_vq_users_sessions_and_end_sessions(app: FastAPI, runner: CliRunner) -> None:
    async with browser(app, "laptop") as laptop:
        cookie = await sign_in(laptop, "viewer")
        code, out = await invoke_beside(runner, "users", "sessions", "viewer")
        assert code == 0 and "laptop" in out and "127.0.0.1" in out
        code, out = await invoke_beside(runner, "users", "sessions", "viewer", "--json")
        listed = json.loads(out)
        assert code == 0 and [s["user_agent"] for s in listed] == ["laptop"]
        code, out = await invoke_beside(runner, "users", "end-sessions", "viewer")
        assert code == 0 and out.strip() == "ended 1 session of 'viewer'"
        assert await me_with(laptop, cookie) == 401
        code, out = await invoke_beside(runner, "users", "sessions", "viewer")
        assert code == 0 and out.strip() == "'viewer' has no live sessions"
        code, out = await invoke_beside(runner, "users", "end-sessions", "viewer")
        assert code == 0 and out.strip() == "ended 0 sessions of 'viewer'"


@pytest.mark.parametrize("command", ["sessions", "end-sessions"])
def test_session_commands_name_an_unknown_user(runner: CliRunner, command: str) -> None:
    code, out = invoke(runner, "users", command, "nobody")
    assert code == 2 and "no user named 'nobody'" in out
    code, out = invoke(runner, "users", command, "a\x00b")
    assert code == 2 and "NAME: text may not contain NUL characters" in out
