"""Helpers of the video-service tests: tiny renders, fake claimed jobs, progress recorders."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from vq_core.models import ClaimedJob, Priority
from vq_plugins.reference.app import RenderOptions
from vq_plugins.reference.reference_services import ReferenceServer, start_reference_server

# Small frames at a low rate: a five-second render costs a fraction of a CPU second.
TINY = RenderOptions(width=160, height=96, fps=8, clip_seconds=2.0, max_length=30.0)


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
