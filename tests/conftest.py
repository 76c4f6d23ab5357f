"""Shared fixtures: a real PostgreSQL database per test, cloned from a migrated template.

The server is VQ_TEST_DATABASE_URL if set, else the one on 127.0.0.1:5432 if it
answers, else an embedded server started for the session. Each xdist worker
builds its own template once; each test gets ``CREATE DATABASE ... TEMPLATE``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from vq_core import db
from vq_core.config import Settings
from vq_core.db import migrations
from vq_core.store import Store

os.environ.setdefault("VQ_CONFIG", "/nonexistent/vq.toml")  # a developer's vq.toml must not leak in
LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def _with_database(dsn: str, name: str) -> str:
    base, _, _ = dsn.rpartition("/")
    query = ""
    if "?" in dsn.rpartition("/")[2]:
        query = "?" + dsn.rpartition("?")[2]
    return f"{base}/{name}{query}"


async def _answers(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


@pytest.fixture(scope="session")
def server_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A DSN of a database on the test server with rights to create databases."""
    configured = os.environ.get("VQ_TEST_DATABASE_URL")
    if configured:
        return configured
    if asyncio.run(_answers(LOCAL_SERVER)):
        return LOCAL_SERVER
    from vq_core.db.embedded import embedded_dsn

    return embedded_dsn(tmp_path_factory.getbasetemp().parent / "vq-test-embedded")


async def _admin(server: str, statement: str) -> None:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_db(server_dsn: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database migrated once per xdist worker (or per plain pytest run), cloned by
    every test."""
    worker_id = getattr(request.config, "workerinput", {}).get("workerid", "main")
    name = f"vq_tpl_{worker_id}_{os.getpid()}"

    async def build() -> None:
        await _admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await _admin(server_dsn, f'CREATE DATABASE "{name}"')
        conn = await db.connect(_with_database(server_dsn, name))
        try:
            await migrations.migrate(conn)
        finally:
            await conn.close()

    asyncio.run(build())
    yield name
    asyncio.run(_admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def dsn(server_dsn: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for this test only."""
    name = f"vq_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
    yield _with_database(server_dsn, name)
    asyncio.run(_admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def empty_dsn(server_dsn: str) -> Iterator[str]:
    """A fresh database with no schema at all (for migration tests)."""
    name = f"vq_e_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server_dsn, f'CREATE DATABASE "{name}"'))
    yield _with_database(server_dsn, name)
    asyncio.run(_admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def settings(dsn: str, tmp_path: Path) -> Settings:
    """Settings pointing at this test's database, with fast timings for tests."""
    return Settings(
        database_url=dsn,
        data_dir=tmp_path / "data",
        poll_interval=0.5,
        lease_seconds=5,
        lease_recovery_interval=0.5,
        heartbeat_interval=0.5,
        shutdown_grace=5,
        retry_base_delay=0.05,
        retry_max_delay=0.5,
    )


@pytest.fixture
async def store(dsn: str) -> AsyncIterator[Store]:
    """A store over this test's database."""
    pool = await db.create_pool(dsn, min_size=1, max_size=8)
    store = Store(pool)
    yield store
    await store.close()
