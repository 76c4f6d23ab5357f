"""Test helpers: polling with a deadline, running a real worker, small services."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from vq_core.config import Settings
from vq_core.models import ClaimedJob
from vq_core.plugins import PluginManager, make_plugin_manager
from vq_core.store import Store
from vq_core.video_service import ProgressCallback, VideoService
from vq_core.worker.process import Worker

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T]], timeout: float = 15.0, interval: float = 0.02
) -> T:
    """Poll ``check`` until it returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)  # polling interval, bounded by the deadline
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


class ScriptedService:
    """A video service whose behaviour per job comes from the payload.

    payload keys: ``fail`` (an exception to raise, by category), ``hold`` (wait on an
    event named in ``events`` before finishing), ``result`` (dict to return).
    """

    def __init__(self, name: str = "scripted", job_types: tuple[str, ...] = ("scripted",)):
        self.name = name
        self.job_types = job_types
        self.calls: list[ClaimedJob] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.started: dict[str, asyncio.Event] = {}
        self.healthy = True
        self.running: list[str] = []  # the types of the jobs running now
        self.most_running = 0
        self.most_running_of: dict[str, int] = {}
        self.raise_for: Callable[[ClaimedJob], BaseException | None] = lambda job: None

    def gate(self, name: str) -> asyncio.Event:
        """An event a ``hold: name`` job waits on."""
        return self.gates.setdefault(name, asyncio.Event())

    def started_event(self, name: str) -> asyncio.Event:
        """Set when a ``hold: name`` job starts."""
        return self.started.setdefault(name, asyncio.Event())

    async def render(self, job: ClaimedJob, progress: ProgressCallback) -> dict[str, Any]:
        self.calls.append(job)
        self.running.append(job.job_type)
        self.most_running = max(self.most_running, len(self.running))
        of_type = self.running.count(job.job_type)
        self.most_running_of[job.job_type] = max(self.most_running_of.get(job.job_type, 0), of_type)
        try:
            hold = job.payload.get("hold")
            if hold:
                self.started_event(hold).set()
                await progress(50, "holding")
                await self.gate(hold).wait()
        finally:
            self.running.remove(job.job_type)
        exc = self.raise_for(job)
        if exc is not None:
            raise exc
        return dict(job.payload.get("result") or {"ok": True})

    async def health(self) -> bool:
        return self.healthy

    async def aclose(self) -> None:
        return None


@contextlib.asynccontextmanager
async def running_worker(
    store: Store,
    settings: Settings,
    services: Mapping[str, VideoService],
    dsn: str,
    pm: PluginManager | None = None,
) -> AsyncIterator[Worker]:
    """A real worker on this event loop, stopped (gracefully) at the end."""
    pm = pm or make_plugin_manager(settings, load_entrypoints=False)
    worker = Worker(store, settings, pm, services, dsn)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    started = asyncio.create_task(worker.started.wait())
    done, _ = await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        started.cancel()
        task.result()  # raises the worker's start-up error
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
