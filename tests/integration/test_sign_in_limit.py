"""The sign-in limit under concurrency, and whose address it counts: the TCP peer, or
what a trusted proxy says in X-Forwarded-For (the ``trusted_proxies`` setting)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from vq_core.config import Settings
from vq_core.store import Store
from vq_ui.app import create_app
from vq_ui.auth import sessions, users
from vq_ui.server import WebServer

pytest_plugins = ["support.api"]  # cheap argon2
BASE = "http://127.0.0.1:8080"
PASSWORD = "correct horse battery"


def ui_settings(settings: Settings, **ui: Any) -> Settings:
    return settings.model_copy(update={"plugin_config": {"ui": ui}})


def client_from(app: FastAPI, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url=BASE)


async def login(
    client: httpx.AsyncClient, password: str = PASSWORD, forwarded_for: str | None = None
) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    return await client.post(
        "/login", data={"username": "ann", "password": password}, headers=headers
    )


@pytest.fixture
async def ann(store: Store) -> None:
    await users.create_user(store, "ann", PASSWORD, "operator")


# -- the burst ----------------------------------------------------------------------


@pytest.mark.usefixtures("ann")
async def test_a_burst_of_wrong_passwords_gets_only_the_limit_through(
    settings: Settings, store: Store
) -> None:
    app = create_app(ui_settings(settings, login_max_failures=5), store, admin_page=False)
    async with client_from(app, "127.0.0.1") as c:
        burst = await asyncio.gather(*(login(c, f"wrong {i}") for i in range(30)))
        statuses = sorted(r.status_code for r in burst)
        assert statuses == [401] * 5 + [429] * 25
        assert (await login(c)).status_code == 429  # the right password waits too
    failures = await store.pool.fetchval("SELECT count(*) FROM vq.login_failures")
    assert failures == 5  # refused attempts are not counted: the lock-out does not grow


# -- X-Forwarded-For --------------------------------------------------------------------


@pytest.fixture
async def served(settings: Settings, store: Store) -> AsyncIterator[str]:
    """vq run's web server (uvicorn on a loopback socket), limit 2 failures."""
    server = WebServer(
        ui_settings(settings, login_max_failures=2).model_copy(update={"port": 0}), store
    )
    stop = asyncio.Event()
    task = asyncio.create_task(server.serve(stop))
    try:
        yield server.url
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _when_up(client: httpx.AsyncClient) -> None:
    for _ in range(200):
        with contextlib.suppress(httpx.ConnectError):
            await client.get("/api/v1/healthz")
            return
        await asyncio.sleep(0.05)  # polling for the listener, bounded by the loop count
    raise AssertionError("the web server did not answer within 10 s")


@pytest.mark.usefixtures("ann")
async def test_the_web_server_ignores_forwarded_for_by_default(served: str) -> None:
    async with httpx.AsyncClient(base_url=served) as c:
        await _when_up(c)
        for _ in range(2):
            assert (await login(c, "wrong password")).status_code == 401
        # A loopback client that claims to forward for someone else is still itself.
        assert (await login(c, forwarded_for="127.0.0.77")).status_code == 429
        assert (await login(c, forwarded_for="127.0.0.78, 127.0.0.79")).status_code == 429


@pytest.mark.usefixtures("ann")
async def test_forwarded_for_counts_only_from_a_trusted_proxy(
    settings: Settings, store: Store
) -> None:
    app = create_app(
        ui_settings(settings, login_max_failures=2, trusted_proxies=["127.0.0.1"]),
        store,
        admin_page=False,
    )
    async with client_from(app, "127.0.0.1") as proxy:
        for _ in range(2):
            assert (await login(proxy, "wrong", forwarded_for="127.0.0.50")).status_code == 401
        assert (await login(proxy, forwarded_for="127.0.0.50")).status_code == 429
        # The proxy appends the peer it saw: a client's own prefix does not help it.
        spoofed = await login(proxy, forwarded_for="127.0.0.99, 127.0.0.50")
        assert spoofed.status_code == 429
        # Proxies are skipped from the right: the client is the first untrusted address.
        chained = await login(proxy, forwarded_for="127.0.0.50, 127.0.0.1")
        assert chained.status_code == 429
        other = await login(proxy, forwarded_for="127.0.0.51")
        assert other.status_code == 303  # another client behind the same proxy
        assert (await login(proxy)).status_code == 303  # the proxy itself: no failures
    listed = await sessions.list_sessions(store, "ann")
    assert sorted(s.ip for s in listed) == ["127.0.0.1", "127.0.0.51"]
    async with client_from(app, "127.0.0.2") as untrusted:
        # Not a trusted proxy: its header is ignored, it is counted as itself.
        assert (await login(untrusted, forwarded_for="127.0.0.51")).status_code == 303
        for _ in range(2):
            await login(untrusted, "wrong", forwarded_for="127.0.0.51")
        assert (await login(untrusted, forwarded_for="127.0.0.52")).status_code == 429
    async with client_from(app, "127.0.0.1") as proxy:
        assert (await login(proxy, forwarded_for="127.0.0.51")).status_code == 303


@pytest.mark.usefixtures("ann")
async def test_trusted_proxies_take_networks_and_the_scheme(
    settings: Settings, store: Store
) -> None:
    app = create_app(
        ui_settings(settings, trusted_proxies=["127.0.0.0/30"]), store, admin_page=False
    )
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "127.0.0.60"}
    form = {"username": "ann", "password": PASSWORD}
    async with client_from(app, "127.0.0.3") as proxy:
        r = await proxy.post("/login", data=form, headers=https)
        assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]
    async with client_from(app, "127.0.0.4") as outside:  # outside 127.0.0.0/30
        r = await outside.post("/login", data=form, headers=https)
        assert r.status_code == 303 and "Secure" not in r.headers["set-cookie"]
    assert sorted(s.ip for s in await sessions.list_sessions(store, "ann")) == [
        "127.0.0.4",
        "127.0.0.60",
    ]


@pytest.mark.usefixtures("ann")
async def test_a_name_no_account_can_have_is_a_wrong_password(
    settings: Settings, store: Store
) -> None:
    app = create_app(settings, store, admin_page=False)
    async with client_from(app, "127.0.0.1") as c:
        for name in ("an\x00n", "a b", "x" * 65):
            r = await c.post("/login", data={"username": name, "password": PASSWORD})
            assert r.status_code == 401 and "Wrong username or password." in r.text
    assert await store.pool.fetchval("SELECT count(*) FROM vq.login_failures") == 0
