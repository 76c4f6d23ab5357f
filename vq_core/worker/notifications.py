"""Notifications: LISTEN on ``vq_jobs`` (claim now), ``vq_cancel`` (abort that job),
``vq_config`` (an operator changed a type's or a service's settings: reload them) and
``vq_callbacks`` (a completion callback is due: deliver it).

Polling is the fallback: each poll tick claims anyway, and first reconnects a
LISTEN connection that was lost (or never came up), so a database restart costs
at most one poll interval of latency.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable

from vq_core import db
from vq_core.db.listener import Listener

log = logging.getLogger("vq.worker")
_DB_ERRORS = db.DB_ERRORS


class Notifications:
    """Wakes the claim lanes on new jobs and cancels jobs operators cancel."""

    def __init__(
        self,
        dsn: str,
        poll_interval: float,
        wake: Callable[[], None],
        cancel: Callable[[uuid.UUID], None],
        options: db.ConnectOptions | None = None,
        reload: Callable[[], None] | None = None,
        callbacks: Callable[[], None] | None = None,
    ) -> None:
        self.poll_interval = poll_interval
        self._wake = wake
        self._cancel = cancel
        self._reload = reload
        channels = {
            "vq_jobs": self._on_jobs,
            "vq_cancel": self._on_cancel,
            "vq_config": self._on_config,
        }
        if callbacks is not None:
            channels["vq_callbacks"] = lambda _payload: callbacks()
        self._listener = Listener(dsn, channels, options)

    async def listen(self) -> None:
        """Start listening; when the database refuses, log it and rely on polling."""
        try:
            await self._listener.open()
        except _DB_ERRORS as exc:
            log.warning("LISTEN unavailable (%s); polling every %.1fs", exc, self.poll_interval)

    async def poll(self) -> None:
        """The poll tick: listen again if the connection was lost, then claim."""
        if not self._listener.alive:
            await self.listen()
        self._wake()

    async def close(self, timeout: float | None = None) -> None:
        """Stop listening, within ``timeout`` seconds (then the connection is dropped)."""
        await self._listener.close(timeout)

    def _on_jobs(self, _payload: str) -> None:
        self._wake()

    def _on_config(self, _payload: str) -> None:
        if self._reload is not None:
            self._reload()

    def _on_cancel(self, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self._cancel(uuid.UUID(payload))
