"""A completion whose reply is lost: PostgreSQL committed it, the worker never heard.

The connection dies between the commit and the answer (a restart, a cut network), the
completer retries the batch, and the retry must report the jobs done, since they are
this worker's completions: no "lease was lost" warning, and observers hear of each.
A proxy between the store and PostgreSQL cuts the connection at exactly that point.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from support.helpers import ScriptedService, eventually, running_worker
from support.reply_cutter import reply_cutter

from vq_core import db, hookimpl
from vq_core.config import Settings
from vq_core.db.queries import sql
from vq_core.models import JobStatus, NewJob
from vq_core.plugins import make_plugin_manager
from vq_core.store import Store
from vq_core.worker.completer import BatchCompleter, Completion


async def completed_events(store: Store) -> int:
    count: int = await store.pool.fetchval(
        "SELECT count(*) FROM vq.job_events WHERE event = 'completed'"
    )
    return count


async def test_a_completion_retried_after_its_reply_was_lost_is_reported_done(
    store: Store, dsn: str
) -> None:
    ids = [r.id for r in await store.enqueue_many([NewJob("t", {"n": i}) for i in range(3)])]
    await store.claim("w", {"t": "noop"}, 3, 30)
    async with reply_cutter(dsn, sql("complete_jobs")) as cutter:
        pool = await db.create_pool(cutter.dsn(dsn), min_size=1, max_size=1)
        try:
            completer = BatchCompleter(Store(pool), "w")
            reports: list[tuple[list[uuid.UUID], set[uuid.UUID]]] = []

            def completed(batch: Sequence[Completion], done: set[uuid.UUID]) -> None:
                reports.append(([job_id for job_id, _ in batch], done))

            completer.completed = completed
            for n, job_id in enumerate(ids):
                completer.complete_later(job_id, {"n": n})
            cutter.arm()
            await asyncio.wait_for(completer.flush(), 30)
        finally:
            await pool.close()
    assert cutter.cut.is_set()  # the first write committed and its answer was lost
    assert reports == [(ids, set(ids))]
    for n, job_id in enumerate(ids):
        job = await store.get_job(job_id)
        assert job.status is JobStatus.COMPLETED and job.result == {"n": n}
    assert await completed_events(store) == 3


class Observer:
    def __init__(self) -> None:
        self.completed: list[uuid.UUID] = []

    @hookimpl
    def vq_job_event(self, job_id: uuid.UUID, event: str, details: dict[str, Any]) -> None:
        if event == "completed":
            self.completed.append(job_id)


async def test_a_worker_whose_completion_reply_is_lost_reports_every_job_completed(
    settings: Settings, dsn: str, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """The real thing: a worker drains jobs through the proxy; the reply of one batch
    completion is lost. Every job completes once, and observers hear of every one."""
    observer = Observer()
    pm = make_plugin_manager(settings, load_entrypoints=False)
    pm.register(observer)
    service = ScriptedService()
    n = 60
    caplog.set_level(logging.WARNING, logger="vq")
    async with reply_cutter(dsn, sql("complete_jobs")) as cutter:
        pool = await db.create_pool(cutter.dsn(dsn), min_size=1, max_size=8)
        proxied = Store(pool)
        try:
            async with running_worker(proxied, settings, {"scripted": service}, dsn, pm=pm):
                cutter.arm()
                ids = {r.id for r in await store.enqueue_many([NewJob("scripted")] * n)}

                async def all_completed() -> bool:
                    return await completed_events(store) == n

                await eventually(all_completed, timeout=60, interval=0.05)
                await asyncio.wait_for(cutter.cut.wait(), 5)
                await eventually(lambda: _heard(observer, ids), timeout=5)
        finally:
            await pool.close()
    assert sorted(observer.completed) == sorted(ids)  # each once
    assert any("completing" in r.getMessage() for r in caplog.records)  # the retry happened
    assert not [r.getMessage() for r in caplog.records if "lease was lost" in r.getMessage()]


async def _heard(observer: Observer, ids: set[uuid.UUID]) -> bool:
    return set(observer.completed) == ids
