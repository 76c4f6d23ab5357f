"""Helpers of the video-service tests: tiny renders, fake claimed jobs, progress recorders."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from vq_core.models import ClaimedJob, Priority
from vq_plugins.reference.app import RenderOptions
from vq_plugins.reference.reference_services import ReferenceServer, start_reference_server

# Small frames at a low rate: a five-second render costs a fraction of a CPU second.
# Manim is off here: each Manim clip costs a ~3 s subprocess, and the tests of the real
# Manim renderer (tests/e2e/test_manim_reference.py) set their own options.
TINY = RenderOptions(
    width=160, height=96, fps=8, clip_seconds=2.0, max_length=30.0, manim=False
)


@contextmanager
def reference_server(media_dir: Path) -> Iterator[ReferenceServer]:
    """A reference server on a free loopback port, stopped at the end."""
    server = start_reference_server(media_dir, options=TINY)
    try:
        yield server
    finally:
        server.stop()


def claimed(payload: dict[str, Any], job_type: str = "doubt", retry_count: int = 0) -> ClaimedJob:
    """A job as a worker would hand it to a service."""
    return ClaimedJob(
        id=uuid.uuid4(),
        job_type=job_type,
        priority=Priority.NORMAL,
        payload=payload,
        retry_count=retry_count,
        max_retries=3,
        created_at=datetime.now(UTC),
    )


class ProgressLog:
    """An async progress callback that remembers every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []

    async def __call__(self, percent: float, stage: str) -> None:
        self.calls.append((percent, stage))

    @property
    def stages(self) -> list[str]:
        """Stages in the order they were reported."""
        return [stage for _, stage in self.calls]


def faulty_client(fault: str, read_timeout: float = 30.0) -> httpx.AsyncClient:
    """A client whose every request asks the reference server for ``fault``."""
    timeout = httpx.Timeout(read_timeout, connect=5.0)
    return httpx.AsyncClient(timeout=timeout, headers={"X-Fault": fault})


async def fetch(url: str) -> httpx.Response:
    """GET a URL in full."""
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(url)


async def download(url: str, target: Path) -> Path:
    """Save a URL's body to ``target``."""
    response = await fetch(url)
    response.raise_for_status()
    await asyncio.to_thread(target.write_bytes, response.content)
    return target


@dataclass
class LoopbackPeer:
    """A loopback HTTP server answering each path from ``answers`` (404 otherwise) and
    recording the path of every request it receives, for the video-check tests."""

    answers: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    url: str = ""

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        """Answer ``path`` with a redirect to ``location``."""
        self.answers[path] = (status, {"Location": location}, b"")

    def serve(self, path: str, body: bytes, content_type: str, status: int = 200) -> None:
        """Answer ``path`` with ``body``."""
        self.answers[path] = (status, {"Content-Type": content_type}, body)

    async def on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve one request, then close the connection."""
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            path = head.split(" ", 2)[1]
            self.paths.append(path)
            status, headers, body = self.answers.get(path, (404, {}, b"not here"))
            lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def loopback_peer() -> AsyncIterator[LoopbackPeer]:
    """A started ``LoopbackPeer`` on a free 127.0.0.1 port, closed at the end."""
    peer = LoopbackPeer()
    server = await asyncio.start_server(peer.on_connection, "127.0.0.1", 0)
    peer.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield peer
    finally:
        server.close()
        await server.wait_closed()
