"""A TCP proxy on 127.0.0.1 that can stall: stop forwarding, yet keep every socket open.

To a client it looks like a database that stopped answering (a network black hole, a
frozen server): connections stay established, bytes sent are accepted and held,
no reply, no reset. ``resume`` delivers what was held, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit


class TcpProxy:
    """Forwards each connection to ``target_host:target_port`` while not stalled."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._forwarding = asyncio.Event()
        self._forwarding.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._next_id = 0
        #: Connections the stall holds up: bytes of either side, or a connection not
        #: yet made to the server.
        self.held: set[int] = set()
        self._held_changed = asyncio.Event()

    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    def dsn(self, dsn: str) -> str:
        """``dsn`` with its host and port replaced by the proxy's."""
        return via_port(dsn, self.port)

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    def stall(self) -> None:
        """Stop forwarding in both directions; new connections are accepted and held too."""
        self._forwarding.clear()

    def resume(self) -> None:
        """Forward again, starting with what the stall held."""
        self.held.clear()
        self._forwarding.set()

    async def wait_held(self, connections: int, timeout: float) -> None:
        """Wait until the stall holds up ``connections`` connections: each is waiting for
        an answer it will not get while stalled."""
        async with asyncio.timeout(timeout):
            while len(self.held) < connections:
                self._held_changed.clear()
                await self._held_changed.wait()

    async def close(self) -> None:
        """Stop listening and close every connection, held or not."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(client_w)
        conn_id, self._next_id = self._next_id, self._next_id + 1
        server_w: asyncio.StreamWriter | None = None
        try:
            await self._hold(conn_id)
            server_r, server_w = await asyncio.open_connection(*self.target)
            self._writers.add(server_w)
            await asyncio.gather(
                self._pump(client_r, server_w, conn_id),
                self._pump(server_r, client_w, conn_id),
            )
        except OSError:
            pass  # a side reset the connection: the other goes with it, below
        except asyncio.CancelledError:
            # close() ends the connection; asyncio's stream server would log a handler
            # that ends cancelled as an error.
            pass
        finally:
            client_w.close()
            if server_w is not None:
                server_w.close()
            self._tasks.discard(task)

    async def _hold(self, conn_id: int) -> None:
        """Return at once while forwarding; while stalled, note the held-up connection
        and wait for ``resume``."""
        if self._forwarding.is_set():
            return
        self.held.add(conn_id)
        self._held_changed.set()
        await self._forwarding.wait()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn_id: int
    ) -> None:
        while data := await reader.read(65536):
            # Stalled, hold the bytes and stop reading: the sender's socket stays open,
            # and what it sends next waits in the kernel's buffers.
            await self._hold(conn_id)
            writer.write(data)
            await writer.drain()
        # One side closed: pass the end on, unless stalled (a stalled peer says nothing).
        await self._forwarding.wait()
        with contextlib.suppress(OSError):
            writer.write_eof()


def via_port(dsn: str, port: int, *, tls: bool = True) -> str:
    """``dsn`` pointed at ``127.0.0.1:port`` (a proxy), its credentials kept; ``tls=False``
    turns TLS off for a proxy that reads the protocol."""
    parts = urlsplit(dsn)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    query = parts.query if tls else "&".join(q for q in (parts.query, "sslmode=disable") if q)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def proxyable(dsn: str) -> bool:
    """Whether ``dsn`` reaches its server over TCP (the embedded one uses a unix socket)."""
    parts = urlsplit(dsn)
    return bool(parts.hostname) and "host=" not in parts.query


@contextlib.asynccontextmanager
async def tcp_proxy(target_dsn: str) -> AsyncIterator[TcpProxy]:
    """A started ``TcpProxy`` in front of the server of ``target_dsn``, closed at the end."""
    if not proxyable(target_dsn):
        raise ValueError(f"the proxy needs a server reached over TCP, not {target_dsn!r}")
    parts = urlsplit(target_dsn)
    assert parts.hostname is not None
    proxy = TcpProxy(parts.hostname, parts.port or 5432)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
