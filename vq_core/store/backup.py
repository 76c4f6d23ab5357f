"""What ``vq db backup`` and ``vq db restore`` ask of the server around pg_dump and
pg_restore (SQL in ``sql/queries/backup.sql``).

Plain functions over one connection rather than a part of ``Store``: a backup or a
restore needs no pool, and a restore runs before the schema the store reads exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from vq_core.db.queries import sql

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


@dataclass(frozen=True)
class ServerVersion:
    """The server's version: ``num`` as ``server_version_num`` (180004), ``text`` ("18.4")."""

    num: int
    text: str

    @property
    def major(self) -> int:
        """The major version (18 for 180004; 9 for 90624, which no vq runs on anyway)."""
        return self.num // 10000


async def server_version(conn: Conn) -> ServerVersion:
    """The version of the server ``conn`` is connected to."""
    row = await conn.fetchrow(sql("backup_server_version"))
    assert row is not None
    # server_version may carry a packager's suffix: "15.20 (Debian 15.20-0+deb12u1)".
    return ServerVersion(int(row["num"]), str(row["text"]).split()[0])


async def vq_schema_exists(conn: Conn) -> bool:
    """Whether the connected database has a ``vq`` schema."""
    return bool(await conn.fetchval(sql("backup_vq_schema_exists")))


async def count_jobs(conn: Conn) -> tuple[int, int]:
    """The jobs and the history events the ``vq`` schema holds."""
    row = await conn.fetchrow(sql("backup_count_jobs"))
    assert row is not None
    return int(row["jobs"]), int(row["events"])


async def set_aside_vq_schema(conn: Conn) -> None:
    """Rename ``vq`` to ``vq_before_restore`` (dropping an older leftover of that name)."""
    async with conn.transaction():
        await conn.execute(sql("backup_set_aside_vq_schema"))


async def drop_set_aside_schema(conn: Conn) -> None:
    """Drop ``vq_before_restore``, once the restore that replaced it has committed."""
    await conn.execute(sql("backup_drop_set_aside_schema"))


async def put_back_vq_schema(conn: Conn) -> None:
    """Rename ``vq_before_restore`` back to ``vq`` after a failed restore."""
    await conn.execute(sql("backup_put_back_vq_schema"))
