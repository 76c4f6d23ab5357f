"""A TCP proxy to PostgreSQL that loses one reply: the statement commits, the client
never hears, and the connection closes (what a restart or a cut network does to a
statement in flight, at the worst moment).

It reads the client's protocol messages to tell statements apart: a ``Parse`` whose
SQL is the watched statement names a prepared statement, and the next ``Bind`` of that
name after ``arm`` dooms its connection. The server's answer is then swallowed up to
its ReadyForQuery, sent once the statement has committed, and both sides are closed.
Plain text only: the proxied DSN turns TLS off.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from support.tcp_proxy import via_port

# ReadyForQuery: the last message of every reply, type 'Z', length 5.
READY_FOR_QUERY = b"Z\x00\x00\x00\x05"


@dataclass
class _Connection:
    watched: set[bytes] = field(default_factory=set)  # names of the statement's Parses
    doomed: bool = False


class ReplyCutter:
    """Forwards every connection to ``host:port``; ``arm`` loses the next reply to the
    statement whose SQL is ``statement``."""

    def __init__(self, host: str, port: int, statement: str) -> None:
        self.target = (host, port)
        self.statement = statement.encode()
        self.cut = asyncio.Event()
        self._armed = False
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The loopback port the proxy listens on."""
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    def dsn(self, dsn: str) -> str:
        """``dsn`` through the proxy, without TLS (the proxy reads the messages)."""
        return via_port(dsn, self.port, tls=False)

    def arm(self) -> None:
        """Lose the reply to the next execution of the statement; ``cut`` is set then."""
        self._armed = True

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def close(self) -> None:
        """Stop listening (connections end with their clients)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_w: asyncio.StreamWriter | None = None
        pumps: list[asyncio.Task[None]] = []
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
            conn = _Connection()
            pumps = [
                asyncio.create_task(self._requests(client_r, server_w, conn)),
                asyncio.create_task(self._replies(server_r, client_w, conn)),
            ]
            # When either side ends (or the reply is cut), the connection ends.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        except OSError:
            pass
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for writer in (client_w, server_w):
                if writer is not None:
                    writer.close()

    async def _requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Connection
    ) -> None:
        pending = b""
        startup = True  # the first message has a length but no type byte
        while data := await reader.read(65536):
            pending += data
            while True:
                head = 4 if startup else 5
                if len(pending) < head:
                    break
                end = head - 4 + int.from_bytes(pending[head - 4 : head], "big")
                if len(pending) < end:
                    break
                self._inspect(pending[: head - 4], pending[head:end], conn)
                pending, startup = pending[end:], False
            # Inspected before it is forwarded: the connection is doomed before any answer.
            writer.write(data)
            await writer.drain()

    def _inspect(self, kind: bytes, body: bytes, conn: _Connection) -> None:
        if kind == b"P":  # Parse: statement name, then the SQL
            name, _, rest = body.partition(b"\0")
            if rest.partition(b"\0")[0] == self.statement:
                conn.watched.add(name)
            else:  # a name can be reused (the unnamed statement always is)
                conn.watched.discard(name)
        elif kind == b"B":  # Bind: portal name, then the statement name
            name = body.partition(b"\0")[2].partition(b"\0")[0]
            if self._armed and name in conn.watched:
                self._armed = False
                conn.doomed = True

    async def _replies(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Connection
    ) -> None:
        swallowed = b""
        while data := await reader.read(65536):
            if conn.doomed:
                swallowed += data
                if READY_FOR_QUERY in swallowed:
                    self.cut.set()
                    return  # _serve closes both sides: the client never gets the answer
                continue
            writer.write(data)
            await writer.drain()


@contextlib.asynccontextmanager
async def reply_cutter(target_dsn: str, statement: str) -> AsyncIterator[ReplyCutter]:
    """A started ``ReplyCutter`` in front of the server of ``target_dsn``, closed at the end."""
    parts = urlsplit(target_dsn)
    cutter = ReplyCutter(parts.hostname or "127.0.0.1", parts.port or 5432, statement)
    await cutter.start()
    try:
        yield cutter
    finally:
        await cutter.close()
