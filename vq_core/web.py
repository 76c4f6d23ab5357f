"""What ``vq run`` needs from a web server plugin (the admin page and API live in vq_ui)."""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable


@runtime_checkable
class WebServer(Protocol):
    """A server that runs on the current event loop until ``stop`` is set."""

    url: str

    async def serve(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then shut down cleanly."""
        ...
