"""Fixtures for the API and auth tests: the app over the test database, an HTTP client
speaking ASGI to it, and a token per role."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from vq_core.config import Settings
from vq_core.store import Store
from vq_ui.app import create_app
from vq_ui.auth import users

BASE = "http://127.0.0.1:8080"


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with small costs: the default takes most of a second per hash here, and
    these tests hash dozens of passwords. The format (and the code path) is the same."""
    monkeypatch.setattr(
        users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture
def app(settings: Settings, store: Store) -> FastAPI:
    """The API and login (no NiceGUI page: the browser tests cover it)."""
    return create_app(settings, store, admin_page=False)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app (no credentials)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        yield c


@pytest.fixture
async def tokens(store: Store) -> dict[str, str]:
    """A live API token per role: ``{"admin": "vq_...", "operator": ..., "viewer": ...}``."""
    out = {}
    for role in ("admin", "operator", "viewer"):
        out[role] = (await users.create_token(store, f"t-{role}", role)).token
    return out
