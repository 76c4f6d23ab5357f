"""End-to-end test of the embedded PostgreSQL: cold start, reuse, restart, stop."""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
import sys
import textwrap

import asyncpg
import pytest

from vq_core.db.embedded import embedded_dsn, embedded_running, stop_embedded

pytestmark = pytest.mark.embedded


async def _roundtrip(dsn: str, table: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SELECT current_database()") == "vq"
        await conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY)")
        await conn.execute(f"INSERT INTO {table} VALUES (1)")
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 1
    finally:
        await conn.close()


def test_embedded_start_reuse_stop(tmp_path: pathlib.Path) -> None:
    # A missing parent must be created by embedded_dsn itself.
    data_dir = tmp_path / "nested" / "vq"
    try:
        dsn = embedded_dsn(data_dir)
        assert dsn.startswith("postgresql://")
        assert embedded_running(data_dir)
        asyncio.run(_roundtrip(dsn, "t1"))

        # Second call in the same process reuses the running server.
        assert embedded_dsn(data_dir) == dsn
        asyncio.run(_roundtrip(dsn, "t2"))

        # A fresh process (what the next `vq run` does) also adopts it, rather than starting a
        # second postmaster on the same pgdata, and the data from above is visible.
        code = textwrap.dedent(
            f"""
            import pathlib
            from vq_core.db.embedded import embedded_dsn
            print(embedded_dsn(pathlib.Path({str(data_dir)!r})))
            """
        )
        out = subprocess.run(
            [sys.executable, "-W", "error", "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert out.stdout.strip() == dsn

        # Stop, then a call in this same process (whose pgserver handle is now stale) restarts.
        assert stop_embedded(data_dir) is True
        assert not embedded_running(data_dir)
        assert stop_embedded(data_dir) is False
        dsn = embedded_dsn(data_dir)
        asyncio.run(_roundtrip(dsn, "t3"))
    finally:
        stop_embedded(data_dir)
    assert not embedded_running(data_dir)
