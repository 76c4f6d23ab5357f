"""LISTEN: a dedicated connection that hands each notification's payload to a callback.

LISTEN needs a connection of its own (a pooled one goes back to the pool and stops
hearing), so this one lives beside the pool for as long as its owner listens. It keeps
the pool's bounds (``ConnectOptions``): an idle listening connection sends no
statement that could time out, so TCP keepalives are what notice a vanished server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import asyncpg

from vq_core.db.connection import DB_ERRORS, ConnectOptions, connect

#: Called with a notification's payload ('' when it had none).
PayloadCallback = Callable[[str], None]


class Listener:
    """LISTEN on ``channels`` over one connection; ``open`` again after it is lost."""

    def __init__(
        self,
        dsn: str,
        channels: Mapping[str, PayloadCallback],
        options: ConnectOptions | None = None,
    ) -> None:
        self._dsn = dsn
        self._channels = dict(channels)
        self._options = options
        self._conn: asyncpg.Connection | None = None

    @property
    def alive(self) -> bool:
        """True while the connection is open, so notifications arrive."""
        return self._conn is not None and not self._conn.is_closed()

    async def open(self) -> None:
        """Connect and LISTEN on every channel; nothing to do while alive.

        :raises: one of ``vq_core.db.DB_ERRORS`` when the database cannot be reached.
        """
        if self.alive:
            return
        conn = await connect(self._dsn, self._options)
        try:
            for channel, callback in self._channels.items():
                await conn.add_listener(channel, _payload_only(callback))
        except BaseException:
            # A connection listening on only some channels would pass for alive.
            conn.terminate()
            raise
        self._conn = conn

    async def close(self, timeout: float | None = None) -> None:
        """Stop listening and close the connection (safe to call when not open).

        Past ``timeout`` seconds without the server's goodbye, the socket is just closed.
        """
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        if timeout is not None and timeout <= 0:
            conn.terminate()
            return
        try:
            await conn.close(timeout=timeout)
        except DB_ERRORS:
            # asyncpg has already dropped the connection: nothing is left to close.
            return


def _payload_only(callback: PayloadCallback) -> Callable[[object, int, str, object], None]:
    """Adapt ``callback`` to asyncpg's (connection, pid, channel, payload) listener."""

    def on_notification(_conn: object, _pid: int, _channel: str, payload: object) -> None:
        callback(str(payload))

    return on_notification
