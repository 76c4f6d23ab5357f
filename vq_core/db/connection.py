"""Connections: the asyncpg pool with vq's codecs, and where the database comes from."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from vq_core.config import Settings

#: What a lost or restarting database raises through asyncpg: the worker retries these.
DB_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)

#: What opening or migrating a database that is down or refuses us raises.
CONNECT_ERRORS: tuple[type[Exception], ...] = (OSError, asyncpg.PostgresError)

#: PostgreSQL refused a value as data (SQLSTATE class 22: a NUL in text, a number out of
#: range, a cast that fails): the input is at fault, not the database.
DataError = asyncpg.DataError


async def init_connection(conn: asyncpg.Connection) -> None:
    """Decode json/jsonb to Python objects on every pooled connection."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections speak JSON natively."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init_connection
    )
    assert pool is not None  # create_pool returns None only if awaited twice
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection (for LISTEN and migrations) with the same codecs as the pool."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    await init_connection(conn)
    return conn


async def resolve_dsn(settings: Settings) -> str:
    """The configured server, or else the embedded one under the data folder."""
    if settings.database_url:
        return settings.database_url
    from vq_core.db.embedded import embedded_dsn

    # Starting PostgreSQL blocks for seconds; keep the event loop free meanwhile.
    return await asyncio.to_thread(embedded_dsn, settings.data_dir)
