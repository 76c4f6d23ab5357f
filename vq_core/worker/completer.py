"""Completions in batches: a burst of short jobs costs a few statements, not one per job.

Jobs that succeed are queued with ``complete_later``; a background loop writes what
has gathered in one statement, and a write the database refuses is kept and retried
so a finished job is never forgotten while the worker lives.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from vq_core import db
from vq_core.store import Store

log = logging.getLogger("vq.worker")
_DB_ERRORS = db.DB_ERRORS

Completion = tuple[uuid.UUID, dict[str, Any]]
#: Told of each batch written: the batch, and the ids the database holds as this
#: worker's completions, written now or by an earlier try whose reply was lost (the
#: others had lost their lease).
Completed = Callable[[Sequence[Completion], set[uuid.UUID]], None]


def _ignore(_batch: Sequence[Completion], _done: set[uuid.UUID]) -> None:
    return None


class BatchCompleter:
    """Buffers job results and writes them in batches on a background task."""

    def __init__(self, store: Store, worker_id: str) -> None:
        self.store = store
        self.worker_id = worker_id
        #: Told of each written batch. Set after construction: its usual target, the
        #: runner's ``completed``, belongs to a runner that is built with this completer.
        self.completed: Completed = _ignore
        self.completions: list[Completion] = []
        self._flush_wanted = asyncio.Event()
        # Held while a batch is written, so shutdown waits for a write in progress.
        self._flush_lock = asyncio.Lock()
        self._loop: asyncio.Task[None] | None = None
        self._writing = 0

    @property
    def pending(self) -> int:
        """Completions not yet written: buffered, or in the write under way."""
        return len(self.completions) + self._writing

    def complete_later(self, job_id: uuid.UUID, result: dict[str, Any]) -> None:
        """Queue a completion for the next batch write."""
        self.completions.append((job_id, result))
        self._flush_wanted.set()

    def start(self) -> None:
        """Start writing batches in the background."""
        self._loop = asyncio.create_task(self._flush_loop(), name="vq-flusher")

    async def stop(self, timeout: float | None = None) -> None:
        """Stop the background writes; ``flush`` first to write what is buffered.

        A write in progress is cancelled; past ``timeout`` seconds it is left to unwind
        on its own (a statement cancelled on a stalled connection unwinds only when
        asyncpg gives up on the server, a statement timeout later).
        """
        loop_task, self._loop = self._loop, None
        if loop_task is None:
            return
        loop_task.cancel()
        await asyncio.wait({loop_task}, timeout=timeout)

    async def flush(self) -> None:
        """Write buffered completions in one statement; on a database error keep them and retry."""
        async with self._flush_lock:
            await self._write_completions()

    async def _flush_loop(self) -> None:
        while True:
            await self._flush_wanted.wait()
            self._flush_wanted.clear()
            try:
                await self.flush()
            except Exception:
                # Completions stay buffered; the next completion or poll retries them.
                log.exception("writing completions failed; they stay buffered")
                await asyncio.sleep(1.0)  # back off before the next attempt
                self._flush_wanted.set()

    async def _write_completions(self) -> None:
        backoff = 0.05
        while self.completions:
            batch, self.completions = self.completions, []
            self._writing = len(batch)
            try:
                done = set(await self.store.complete_many(self.worker_id, batch))
            except _DB_ERRORS as exc:
                self.completions[:0] = batch
                log.warning("completing %d jobs failed (%s); retrying", len(batch), exc)
                await asyncio.sleep(backoff)  # back off from a database that is failing
                backoff = min(backoff * 2, 5.0)
                continue
            finally:
                self._writing = 0
            self.completed(batch, done)
