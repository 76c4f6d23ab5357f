"""The live event stream of one process: ONE listening connection and one reader, fanned
out to every subscriber (the SSE routes of ``vq_ui.api.event_stream``).

``job_events`` rows tell the hub they exist through ``NOTIFY vq_events`` (migration
0013: a statement-level trigger, no payload). On each notification, and on a slow poll
while anyone subscribes (a lost notification, a listener that is down), the hub reads
the events after its cursor once and hands each to the subscribers whose filter
matches. Without subscribers it reads nothing.

Ids come from a sequence, so a transaction may commit id 101 before another commits
100. The hub never steps over a missing id while the transactions that may still commit
it run: it holds the events behind the gap until the transactions in progress when the
gap was seen (and a moment later, for one that had its id but no transaction id yet)
have ended. An id still missing then was rolled back. The cursor therefore has one
property the replays rely on: every event at or below it that will ever exist is
committed. A transaction open longer than ``max_hold`` (an application holding one
open after ``vq.enqueue``) does not stall every stream: the hub moves on, and watches
the ids it stepped over for ``late_window`` seconds, delivering any that commit late.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from vq_core import db
from vq_core.db.listener import Listener
from vq_core.store import Store
from vq_core.store.events import StreamBatch, StreamEvent

log = logging.getLogger("vq.events")
CHANNEL = "vq_events"
#: A subscriber this far behind is dropped (its stream ends; the client resumes with
#: Last-Event-ID), so a stalled client cannot make the process hold every event.
MAX_BACKLOG = 10_000
#: Re-read this soon while a gap is held (a rollback sends no notification).
GAP_RECHECK = 0.05
#: How long a gap's second look waits: long enough for a transaction that took its event
#: id before its transaction id to have the latter.
GAP_SECOND_LOOK = 0.05
MAX_LATE = 10_000

Matcher = Callable[[StreamEvent], bool]


class Subscription:
    """What one stream receives: the events the hub reads after ``start``, in id order
    (late ones aside), that match its job or its filter."""

    def __init__(self, hub: EventHub, job_id: uuid.UUID | None, match: Matcher | None) -> None:
        self.hub = hub
        self.job_id = job_id
        self.match = match
        #: The hub's cursor when this subscription began: events up to it are the
        #: replay's to read from the database, events after it come from the hub.
        self.start = 0
        self.closed = False
        self.overflowed = False
        self._queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue()

    def push(self, event: StreamEvent) -> None:
        """Queue ``event`` (called by the hub)."""
        if self.closed:
            return
        if self._queue.qsize() >= MAX_BACKLOG:
            self.overflowed = True
            self.close()
            return
        self._queue.put_nowait(event)

    def close(self) -> None:
        """End the subscription: the reader gets ``None`` once the queue is drained."""
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(None)
            self.hub.unsubscribe(self)

    async def next(self, timeout: float) -> StreamEvent | None:
        """The next event, or ``None`` after ``timeout`` seconds without one (or once
        closed: check ``closed``)."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None


@dataclass
class _Gap:
    since: float
    xids: set[str]
    second_look: bool = False


@dataclass
class _Late:
    ids: dict[int, float] = field(default_factory=dict)  # id -> when to stop watching

    def expire(self, now: float) -> None:
        for event_id in [i for i, until in self.ids.items() if until < now]:
            del self.ids[event_id]


class EventHub:
    """One process's reader of ``job_events``, shared by all its streams.

    :param dsn: how to reach the database for the LISTEN connection (awaited once).
    """

    def __init__(
        self,
        store: Store,
        dsn: Callable[[], Awaitable[str]],
        *,
        options: db.ConnectOptions | None = None,
        poll_interval: float = 3.0,
        batch_size: int = 1000,
        max_hold: float = 5.0,
        late_window: float = 60.0,
    ) -> None:
        self.store = store
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.max_hold = max_hold
        self.late_window = late_window
        self._dsn = dsn
        self._options = options
        self._listener: Listener | None = None
        self._by_job: dict[uuid.UUID, set[Subscription]] = {}
        self._all: set[Subscription] = set()
        self._cursor = 0
        self._running = False  # the cursor is live (settled, read on every wake-up)
        self._task: asyncio.Task[None] | None = None
        self._starting: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._gap: _Gap | None = None
        self._late = _Late()
        self._closed = False

    # -- subscribers -------------------------------------------------------------

    @property
    def subscribers(self) -> int:
        """How many streams are subscribed now."""
        return len(self._all) + sum(len(s) for s in self._by_job.values())

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is up (else the poll alone brings events)."""
        return self._listener is not None and self._listener.alive

    async def subscribe(
        self, job_id: uuid.UUID | None = None, match: Matcher | None = None
    ) -> Subscription:
        """A subscription to one job's events, or to every event ``match`` accepts (all
        events without it). Its ``start`` is where its replay ends.

        :raises: one of ``vq_core.db.DB_ERRORS`` when the database cannot be read.
        """
        if self._closed:
            raise RuntimeError("the event hub is closed")
        while not self._running:
            if self._starting is None or self._starting.done():
                # One start for every subscriber that arrives meanwhile; shielded, so a
                # client that leaves during it does not cancel the others' start.
                self._starting = asyncio.create_task(self._start())
            await asyncio.shield(self._starting)
        # No await from here on: the cursor read and the registration are one step, so
        # every event after ``start`` reaches this subscription and none before it does.
        sub = Subscription(self, job_id, match)
        sub.start = self._cursor
        if job_id is not None:
            self._by_job.setdefault(job_id, set()).add(sub)
        else:
            self._all.add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget ``sub`` (a disconnected client); safe to call twice."""
        if sub.job_id is not None:
            subs = self._by_job.get(sub.job_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_job[sub.job_id]
        else:
            self._all.discard(sub)
        if not sub.closed:
            sub.close()

    async def close(self, timeout: float | None = 5.0) -> None:
        """End every subscription, stop reading, close the LISTEN connection."""
        self._closed = True
        for sub in list(self._all) + [s for subs in self._by_job.values() for s in subs]:
            sub.close()
        for task in (self._task, self._starting):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, *db.DB_ERRORS):
                    await task
        if self._listener is not None:
            await self._listener.close(timeout)

    # -- reading -----------------------------------------------------------------

    def _notified(self, _payload: str) -> None:
        self._wake.set()

    async def _listen(self) -> None:
        if self._listener is None:
            self._listener = Listener(await self._dsn(), {CHANNEL: self._notified}, self._options)
        if not self._listener.alive:
            try:
                await self._listener.open()
            except db.DB_ERRORS as exc:
                log.warning(
                    "LISTEN %s unavailable (%s); polling every %.1fs",
                    CHANNEL,
                    exc,
                    self.poll_interval,
                )

    async def _start(self) -> None:
        """Listen, then set the cursor to the newest event once every transaction that
        could still commit an older one has ended (at most ``max_hold``)."""
        await self._listen()
        deadline = time.monotonic() + self.max_hold
        cursor, in_progress = await self.store.event_stream_start()
        await self._wait_ended(in_progress, deadline)
        # The second look: a transaction that had taken its event id, but not yet its
        # transaction id, at the first one.
        await asyncio.sleep(GAP_SECOND_LOOK)
        _, in_progress = await self.store.event_stream_start()
        await self._wait_ended(in_progress, deadline)
        self._cursor, self._gap, self._late = cursor, None, _Late()
        self._wake.clear()
        self._running = True

    async def _wait_ended(self, xids: list[str], deadline: float) -> None:
        while xids and time.monotonic() < deadline:
            if await self.store.transactions_ended(xids):
                return
            await asyncio.sleep(GAP_RECHECK)  # re-check, until the deadline at most

    async def _run(self) -> None:
        """Read on every wake-up (or poll tick) while anyone subscribes."""
        try:
            delay = 0.0
            while self.subscribers and not self._closed:
                if delay:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), delay)
                self._wake.clear()
                if not self.listening:
                    await self._listen()
                try:
                    delay = await self._read()
                except db.DB_ERRORS as exc:
                    log.warning("event stream: read failed (%s); retrying", exc)
                    delay = self.poll_interval
        finally:
            # Nobody listens: the cursor goes stale, and the next subscriber starts over.
            self._running = False

    async def _read(self) -> float:
        """Read and hand out the next events; the seconds to wait before the next read
        unless notified (0: read again at once)."""
        gap = self._gap
        late_ids = sorted(self._late.ids)
        batch = await self.store.event_stream_batch(
            self._cursor, late_ids, sorted(gap.xids) if gap else [], self.batch_size
        )
        now = time.monotonic()
        self._late.expire(now)
        out: list[StreamEvent] = []
        held = False
        for event in batch.events:
            if event.id <= self._cursor:
                if self._late.ids.pop(event.id, None) is not None:
                    out.append(event)  # committed late: out of order, but not lost
                continue
            if event.id != self._cursor + 1 and not self._may_step_over(batch, now):
                held = True
                break
            self._gap = None
            self._cursor = event.id
            out.append(event)
        if not held:
            self._gap = None
        self._dispatch(out)
        if held:
            return GAP_RECHECK
        if len(batch.events) >= self.batch_size:
            return 0.0
        return self.poll_interval

    def _may_step_over(self, batch: StreamBatch, now: float) -> bool:
        """Whether the ids between the cursor and the next event read may be skipped."""
        gap = self._gap
        if gap is None:
            self._gap = _Gap(now, set(batch.in_progress))
            return False
        if not gap.second_look:
            if now - gap.since >= GAP_SECOND_LOOK:
                gap.xids |= set(batch.in_progress)
                gap.second_look = True
            return False
        if batch.ended:
            return True  # every transaction that could fill it has ended: rolled back
        if now - gap.since < self.max_hold:
            return False
        first = self._cursor + 1
        log.warning(
            "event stream: ids from %d not committed after %.0fs; moving on, watching them",
            first,
            self.max_hold,
        )
        # Watch the ids stepped over, up to the next event read.
        following = next(e.id for e in batch.events if e.id > self._cursor)
        for event_id in range(first, min(following, first + MAX_LATE)):
            self._late.ids[event_id] = now + self.late_window
        return True

    def _dispatch(self, events: list[StreamEvent]) -> None:
        for event in events:
            for sub in list(self._by_job.get(event.job_id, ())):
                sub.push(event)
            for sub in list(self._all):
                if sub.match is None or sub.match(event):
                    sub.push(event)
