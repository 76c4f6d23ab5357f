"""APScheduler wiring only: periodic coroutines on the running event loop.

Each job is guarded so that a failing tick is logged and the next tick runs;
``max_instances=1`` and ``coalesce`` stop a slow tick from piling up behind itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger("vq.scheduler")


@dataclass(frozen=True)
class Periodic:
    """A coroutine function to run every ``seconds``."""

    name: str
    seconds: float
    func: Callable[[], Awaitable[object]]


def _guarded(task: Periodic) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await task.func()
        except asyncio.CancelledError:
            # The scheduler is stopping with this tick in flight; the next start ticks again.
            log.debug("periodic task %s cancelled by shutdown", task.name)
        except Exception:
            log.exception(
                "periodic task %s failed; it runs again in %.1fs", task.name, task.seconds
            )

    return run


def start_scheduler(tasks: list[Periodic]) -> AsyncIOScheduler:
    """Start a scheduler on the current event loop running ``tasks``."""
    scheduler = AsyncIOScheduler()
    for task in tasks:
        scheduler.add_job(
            _guarded(task),
            "interval",
            seconds=task.seconds,
            id=task.name,
            name=task.name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
    scheduler.start()
    return scheduler


def stop_scheduler(scheduler: AsyncIOScheduler) -> None:
    """Stop without waiting for ticks in progress (the worker awaits its own work)."""
    if scheduler.running:
        scheduler.shutdown(wait=False)
