"""The API's cache of verified tokens: what it keeps, and how revocation still reaches it.

A revocation made in the process serving the API empties its cache at once; one made by
another process (``vq tokens revoke``, run here as a real subprocess) is seen when the
entry expires, ``token_cache_s`` after the lookup.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from support.helpers import eventually

from vq_core.config import Settings
from vq_core.store import Store
from vq_ui.app import create_app
from vq_ui.auth import users
from vq_ui.auth.access import AuthConfig

pytest_plugins = ["support.api"]  # cheap argon2
BASE = "http://127.0.0.1:8080"
JOBS = "/api/v1/jobs"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def with_cache(settings: Settings, seconds: float) -> Settings:
    return settings.model_copy(update={"plugin_config": {"ui": {"token_cache_s": seconds}}})


async def client_of(settings: Settings, store: Store) -> httpx.AsyncClient:
    app = create_app(settings, store, admin_page=False)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


@pytest.fixture
async def long_cache(settings: Settings, store: Store) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app that trusts a verified token for a minute."""
    async with await client_of(with_cache(settings, 60), store) as c:
        yield c


async def revoke_elsewhere(dsn: str, tmp_path: Path, name: str) -> None:
    """``vq tokens revoke NAME`` in a process of its own, as an operator would."""
    env = {**os.environ, "VQ_DATABASE_URL": dsn, "VQ_DATA_DIR": str(tmp_path / "cli")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vq_core.cli", "tokens", "revoke", name,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()


async def test_a_verified_token_is_served_from_the_cache(
    long_cache: httpx.AsyncClient, store: Store, dsn: str, tmp_path: Path
) -> None:
    token = (await users.create_token(store, "ci", "operator")).token
    assert (await long_cache.get(JOBS, headers=bearer(token))).status_code == 200
    await revoke_elsewhere(dsn, tmp_path, "ci")
    # Revoked in the database by another process: this one still trusts its lookup
    # (so requests do not read the token's row) until the entry expires.
    assert (await long_cache.get(JOBS, headers=bearer(token))).status_code == 200
    # A token never seen is looked up, so a fresh one works at once and a wrong one not.
    other = (await users.create_token(store, "other", "viewer")).token
    assert (await long_cache.get(JOBS, headers=bearer(other))).status_code == 200
    assert (await long_cache.get(JOBS, headers=bearer(other + "x"))).status_code == 401


async def test_another_process_s_revocation_is_seen_when_the_entry_expires(
    settings: Settings, store: Store, dsn: str, tmp_path: Path
) -> None:
    token = (await users.create_token(store, "ci", "operator")).token
    async with await client_of(with_cache(settings, 0.3), store) as client:
        assert (await client.get(JOBS, headers=bearer(token))).status_code == 200
        await revoke_elsewhere(dsn, tmp_path, "ci")

        async def refused() -> bool:
            return (await client.get(JOBS, headers=bearer(token))).status_code == 401

        assert await eventually(refused)


async def test_revoking_through_the_api_takes_effect_at_once(
    long_cache: httpx.AsyncClient, store: Store, tokens: dict[str, str]
) -> None:
    victim = await users.create_token(store, "ci", "operator")
    h = bearer(victim.token)
    body = {"job_type": "doubt", "payload": {"question": "q"}}
    assert (await long_cache.post(JOBS, json=body, headers=h)).status_code == 201
    revoked = await long_cache.delete(
        f"/api/v1/tokens/{victim.info.id}", headers=bearer(tokens["admin"])
    )
    assert revoked.status_code == 200, revoked.text
    refused = await long_cache.post(JOBS, json=body, headers=h)
    assert refused.status_code == 401
    assert (await long_cache.get(JOBS, headers=h)).status_code == 401
    # The other tokens were dropped from the cache too, and are simply looked up again.
    assert (await long_cache.get(JOBS, headers=bearer(tokens["viewer"]))).status_code == 200


async def test_roles_still_apply_to_cached_tokens(
    long_cache: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    body = {"job_type": "doubt", "payload": {"question": "q"}}
    for _ in range(2):  # the second time from the cache
        viewer = await long_cache.post(JOBS, json=body, headers=bearer(tokens["viewer"]))
        assert viewer.status_code == 403
        assert (
            await long_cache.get("/api/v1/tokens", headers=bearer(tokens["operator"]))
        ).status_code == 403
        # Validation is not skipped for a trusted token either.
        bad = await long_cache.post(JOBS, json={"payload": {}}, headers=bearer(tokens["operator"]))
        assert bad.status_code == 422


async def test_concurrent_first_requests_share_one_lookup_and_record_the_use(
    long_cache: httpx.AsyncClient, store: Store
) -> None:
    token = (await users.create_token(store, "ci", "operator")).token
    answers = await asyncio.gather(
        *(long_cache.get(JOBS, headers=bearer(token)) for _ in range(16))
    )
    assert [a.status_code for a in answers] == [200] * 16
    assert (await users.list_tokens(store))[0].last_used_at is not None


async def test_no_cache_looks_every_request_up(
    settings: Settings, store: Store, dsn: str, tmp_path: Path
) -> None:
    token = (await users.create_token(store, "ci", "operator")).token
    async with await client_of(with_cache(settings, 0), store) as client:
        assert (await client.get(JOBS, headers=bearer(token))).status_code == 200
        await revoke_elsewhere(dsn, tmp_path, "ci")
        assert (await client.get(JOBS, headers=bearer(token))).status_code == 401


@pytest.mark.parametrize("seconds", [-1, 61])
def test_token_cache_s_is_bounded(settings: Settings, seconds: float) -> None:
    with pytest.raises(ValueError, match="token_cache_s"):
        AuthConfig.from_settings(with_cache(settings, seconds))
