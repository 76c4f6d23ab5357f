"""What ``vq run`` needs from a web server plugin (the admin page and API live in vq_ui)."""

from __future__ import annotations

import asyncio
import socket
from typing import Protocol, runtime_checkable


@runtime_checkable
class WebServer(Protocol):
    """A server that runs on the current event loop until ``stop`` is set."""

    url: str

    async def serve(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then shut down cleanly."""
        ...


def bind_socket(host: str, port: int, inheritable: bool = False) -> socket.socket:
    """A listening-ready TCP socket bound now, so a busy port fails at start-up rather
    than after the worker began; ``inheritable`` for servers run in a child process."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(inheritable)
    return sock
