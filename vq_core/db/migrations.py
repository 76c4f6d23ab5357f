"""Versioned SQL migrations: numbered files applied in order, recorded, under a lock."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

# Any constant works; it only has to be the same for every vq process.
MIGRATION_LOCK_ID = 0x7651_0001
Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE SCHEMA IF NOT EXISTS vq;
CREATE TABLE IF NOT EXISTS vq.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """Every migration shipped with vq, in version order."""
    folder = resources.files("vq_core").joinpath("sql/migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version: {versions}")
    return found


async def applied_versions(conn: Conn) -> set[int]:
    """Versions already recorded in the database (empty before the first migration)."""
    exists = await conn.fetchval("SELECT to_regclass('vq.schema_migrations') IS NOT NULL")
    if not exists:
        return set()
    rows = await conn.fetch("SELECT version FROM vq.schema_migrations")
    return {r["version"] for r in rows}


async def pending_migrations(conn: Conn) -> list[Migration]:
    """Migrations not yet applied to this database."""
    done = await applied_versions(conn)
    return [m for m in available_migrations() if m.version not in done]


async def migrate(conn: Conn, up_to: int | None = None) -> list[Migration]:
    """Apply pending migrations (those up to version ``up_to``, if given), each in its
    own transaction, and return those applied.

    A session advisory lock serialises concurrent callers: the second waits, then
    finds nothing left to do, so ``vq migrate`` is safe from several processes.
    """
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(_CREATE_TABLE)
        applied: list[Migration] = []
        for migration in await pending_migrations(conn):
            if up_to is not None and migration.version > up_to:
                break
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO vq.schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            applied.append(migration)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
