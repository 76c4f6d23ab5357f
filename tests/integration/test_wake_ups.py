"""One wake-up mechanism: the jobs table notifies ``vq_jobs`` whenever a job becomes
ready to claim (migration 0007), whichever way it did, and stays quiet otherwise.

Absence is shown without sleeping: after the action, the test sends a ``fence``
notification on the same channel; notifications arrive in commit order, so once the
fence is in, anything the action sent would be in too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from vq_core import db
from vq_core.models import Actor, NewJob
from vq_core.store import Store

WAKE = ""  # the payload of the tables' notifications
ANN = Actor("ann", "cli")


class Listener:
    """Collects the payloads of ``vq_jobs`` on a connection of its own."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.payloads: list[str] = []
        self._fences: dict[str, asyncio.Event] = {}

    def on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.payloads.append(payload)
        if payload in self._fences:
            self._fences[payload].set()

    async def wakes_after(self, action: Callable[[], Awaitable[Any]]) -> int:
        """How many wake-ups ``action`` sent: fenced before (earlier ones are in and
        dropped) and after (the action's are in)."""
        await self._fence()
        self.payloads.clear()
        await action()
        await self._fence()
        return self.payloads.count(WAKE)

    async def _fence(self) -> None:
        fence = f"fence-{uuid.uuid4()}"
        self._fences[fence] = asyncio.Event()
        await self.conn.execute("SELECT pg_notify('vq_jobs', $1)", fence)
        await asyncio.wait_for(self._fences[fence].wait(), timeout=10)


@pytest.fixture
async def listener(dsn: str) -> AsyncIterator[Listener]:
    conn = await db.connect(dsn)
    listening = Listener(conn)
    await conn.add_listener("vq_jobs", listening.on_notify)
    try:
        yield listening
    finally:
        await conn.close()


async def _running(store: Store, n: int = 1) -> list[uuid.UUID]:
    await store.enqueue_many([NewJob("doubt") for _ in range(n)])
    return [job.id for job in await store.claim("w1", {"doubt": "noop"}, n, 30)]


async def test_an_insert_wakes_once_per_statement(store: Store, listener: Listener) -> None:
    assert await listener.wakes_after(lambda: store.enqueue(NewJob("doubt"))) == 1
    batch = [NewJob("doubt") for _ in range(50)]
    assert await listener.wakes_after(lambda: store.enqueue_many(batch)) == 1


async def test_claims_progress_and_completions_stay_quiet(store: Store, listener: Listener) -> None:
    await store.enqueue_many([NewJob("doubt") for _ in range(3)])
    claimed: list[Any] = []

    async def claim() -> None:
        claimed.extend(await store.claim("w1", {"doubt": "noop"}, 3, 30))

    assert await listener.wakes_after(claim) == 0
    ids = [job.id for job in claimed]
    assert await listener.wakes_after(lambda: store.renew_leases("w1", ids, 30)) == 0
    assert await listener.wakes_after(lambda: store.update_progress("w1", ids[0], 50, "x")) == 0
    done = [(ids[0], {"video_url": "http://127.0.0.1:1/v.mp4"})]
    assert await listener.wakes_after(lambda: store.complete_many("w1", done)) == 0


async def test_every_way_back_to_the_queue_wakes(store: Store, listener: Listener) -> None:
    first, second = await _running(store, 2)
    record = {"message": "boom", "type": "API_ERROR", "retryable": True}
    # A retry due now is ready; one with backoff is not (its worker wakes itself).
    assert await listener.wakes_after(lambda: store.fail("w1", first, record, 0.0)) == 1
    assert await listener.wakes_after(lambda: store.fail("w1", second, record, 3600.0)) == 0

    (released,) = await _running(store)
    assert await listener.wakes_after(lambda: store.release("w1", [released])) == 1

    (lost,) = await _running(store)
    await store.pool.execute(
        "UPDATE vq.jobs SET lease_expires_at = now() - interval '1 s' WHERE id = $1", lost
    )
    assert await listener.wakes_after(store.recover_expired_leases) == 1


async def test_an_operators_retry_wakes(store: Store, listener: Listener) -> None:
    queued = await store.enqueue(NewJob("doubt"))
    await store.cancel(queued.id, actor=Actor("ann", "cli"))
    assert await listener.wakes_after(lambda: store.retry(queued.id, actor=ANN)) == 1


async def test_a_cancel_does_not_wake_the_claimers(store: Store, listener: Listener) -> None:
    queued = await store.enqueue(NewJob("doubt"))
    assert await listener.wakes_after(lambda: store.cancel(queued.id, actor=ANN)) == 0
