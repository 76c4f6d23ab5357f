"""End-to-end tests of the embedded PostgreSQL: cold start, reuse, restart, stop; holders;
a server another installation left running."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import asyncpg
import pytest
from support.embedded import postmaster_pid, start_from_another_installation, wait_gone

from vq_core.db.embedded import (
    EmbeddedError,
    embedded_dsn,
    embedded_running,
    hold_embedded,
    stop_embedded,
)

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


async def _rows(dsn: str, *tables: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in tables}
    finally:
        await conn.close()


async def _plpgsql(dsn: str) -> int:
    """Define and call a PL/pgSQL function: the server loads plpgsql from its installation."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(
            "CREATE OR REPLACE FUNCTION answer() RETURNS int LANGUAGE plpgsql"
            " AS $$ BEGIN RETURN 42; END $$"
        )
        result: int = await conn.fetchval("SELECT answer()")
        return result
    finally:
        await conn.close()


def test_embedded_start_reuse_stop(embedded_tmp: pathlib.Path) -> None:
    # A missing parent must be created by embedded_dsn itself.
    data_dir = embedded_tmp / "nested" / "vq"
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
        assert asyncio.run(_rows(dsn, "t1", "t2")) == {"t1": 1, "t2": 1}

        # Stop, then a call in this same process (whose pgserver handle is now stale) restarts,
        # on the same cluster: the tables written before the stop are still there.
        assert stop_embedded(data_dir) is True
        assert not embedded_running(data_dir)
        assert stop_embedded(data_dir) is False
        dsn = embedded_dsn(data_dir)
        assert asyncio.run(_rows(dsn, "t1", "t2")) == {"t1": 1, "t2": 1}
        asyncio.run(_roundtrip(dsn, "t3"))
    finally:
        stop_embedded(data_dir)
    assert not embedded_running(data_dir)


def test_the_last_holder_to_let_go_stops_the_server(embedded_tmp: pathlib.Path) -> None:
    data_dir = embedded_tmp / "vq"
    try:
        first = hold_embedded(data_dir)
        second = hold_embedded(data_dir)
        assert second.dsn == first.dsn
        pid = postmaster_pid(data_dir / "pgdata")

        assert first.release() is False  # the second holder still uses it
        assert embedded_running(data_dir)
        asyncio.run(_roundtrip(second.dsn, "t1"))
        assert first.release() is False  # releasing twice changes nothing

        assert second.release() is True
        assert not embedded_running(data_dir)
        assert wait_gone(pid)
    finally:
        stop_embedded(data_dir)


def test_a_server_whose_binaries_are_gone_is_replaced(embedded_tmp: pathlib.Path) -> None:
    data_dir = embedded_tmp / "vq"
    site = embedded_tmp / "old-venv"
    try:
        old = start_from_another_installation(data_dir / "pgdata", site)
        shutil.rmtree(site)  # the other installation's .venv is deleted; its server runs on

        dsn = embedded_dsn(data_dir)

        assert wait_gone(old.pid)
        new_pid = postmaster_pid(data_dir / "pgdata")
        assert new_pid != old.pid
        assert asyncio.run(_plpgsql(dsn)) == 42  # was: could not access file "plpgsql"
    finally:
        stop_embedded(data_dir)


def test_another_installations_server_in_use_is_refused_then_replaced(
    embedded_tmp: pathlib.Path,
) -> None:
    data_dir = embedded_tmp / "vq"
    try:
        old = start_from_another_installation(data_dir / "pgdata", embedded_tmp / "other-venv")
        # That installation's vq run holds the server the way hold_embedded does.
        fd = os.open(data_dir / ".holders", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            with pytest.raises(EmbeddedError) as refused:
                embedded_dsn(data_dir)
            assert "VQ_DATA_DIR" in str(refused.value)
            assert str(old.pid) in str(refused.value)
            assert old.is_running()
            assert postmaster_pid(data_dir / "pgdata") == old.pid
        finally:
            os.close(fd)

        # Once nobody holds it, it is stopped and started again from this installation.
        dsn = embedded_dsn(data_dir)
        assert wait_gone(old.pid)
        assert postmaster_pid(data_dir / "pgdata") != old.pid
        assert asyncio.run(_plpgsql(dsn)) == 42
    finally:
        stop_embedded(data_dir)
