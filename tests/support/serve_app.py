"""Serve vq's web app for the browser tests, in its own process.

NiceGUI keeps global state per process, so each test gets a fresh process rather
than a second app in the test runner. Configuration comes from ``VQ_*`` variables
like ``vq run``; the port is chosen by the OS and printed as ``PORT <n>`` once the
socket is bound, so the parent never races for a free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Generator

import uvicorn

from vq_core import db
from vq_core.config import Settings
from vq_core.store import Store
from vq_ui.app import create_app


class _Server(uvicorn.Server):
    """uvicorn re-raises the signal that stopped it, which would interrupt our cleanup;
    main() handles SIGTERM/SIGINT itself instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def main() -> None:
    settings = Settings()
    assert settings.database_url, "VQ_DATABASE_URL must point at the test database"
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=8)
    store = Store(pool)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    # Listening before the port is printed: a browser that connects before uvicorn has
    # started waits in the backlog instead of getting ERR_CONNECTION_REFUSED.
    sock.listen(128)
    app = create_app(settings, store)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = _Server(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, setattr, server, "should_exit", True)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    try:
        await server.serve(sockets=[sock])
    finally:
        await asyncio.wait_for(store.close(), 10)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
