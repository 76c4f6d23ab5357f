"""`vq migrate` against a database that stopped answering: it gives up after
``db_connect_timeout`` with one line, instead of waiting on the socket."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from support.tcp_proxy import proxyable, tcp_proxy


async def test_migrate_gives_up_on_a_stalled_database(dsn: str, tmp_path: Path) -> None:
    if not proxyable(dsn):
        pytest.skip("the proxy needs a server reached over TCP")
    async with tcp_proxy(dsn) as proxy:
        proxy.stall()  # connections are accepted, nothing ever answers
        env = {
            **os.environ,
            "VQ_DATABASE_URL": proxy.dsn(dsn),
            "VQ_DATA_DIR": str(tmp_path),
            "VQ_DB_CONNECT_TIMEOUT": "1",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "vq_core.cli",
            "migrate",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        # Far beyond the 1 s timeout, far below asyncpg's own 60 s default.
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 1, err.decode()
    assert len(lines) == 1 and lines[0].startswith("Error: "), lines
    assert "Traceback" not in err.decode() and out == b""
