"""Loopback servers the alert tests talk to: an HTTP receiver (webhook + health
endpoint) and a minimal SMTP server. Real sockets on 127.0.0.1, started by the tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    """One HTTP request as received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Records every request. ``POST`` answers ``status`` (after ``hold`` is set, if
    there is one); ``GET /health`` answers 200 while ``healthy`` and 503 otherwise."""

    status: int = 200
    healthy: bool = True
    hold: asyncio.Event | None = None
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def posts(self) -> list[dict[str, Any]]:
        """JSON bodies of the POSTs so far."""
        return [r.json() for r in self.requests if r.method == "POST"]

    @property
    def health_checks(self) -> int:
        return sum(1 for r in self.requests if r.path == "/health")

    def alert_keys(self, state: str | None = None) -> list[str]:
        return [p["key"] for p in self.posts if state is None or p["state"] == state]

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._on_connection, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, path, _ = head[0].split(" ", 2)
        headers = {}
        for line in head[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append(Request(method, path, headers, body))
        if path == "/health":
            status = 200 if self.healthy else 503
        else:
            if self.hold is not None:
                await self.hold.wait()
            status = self.status
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: 2\r\nConnection: close\r\n\r\n{{}}".encode()
        )
        await writer.drain()


@contextlib.asynccontextmanager
async def http_receiver(**kwargs: Any) -> AsyncIterator[HttpReceiver]:
    """A started ``HttpReceiver``, closed at the end."""
    receiver = HttpReceiver(**kwargs)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.close()


@dataclass
class SmtpReceiver:
    """Just enough SMTP for smtplib: records (sender, recipients, message bytes)."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        sender, rcpts = "", []
        await reply("220 127.0.0.1 test SMTP")
        try:
            while line := (await reader.readline()).decode().strip():
                verb = line.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    await reply("250 127.0.0.1")
                elif verb == "MAIL":
                    sender = line.split(":", 1)[1].strip(" <>")
                    await reply("250 OK")
                elif verb == "RCPT":
                    rcpts.append(line.split(":", 1)[1].strip(" <>"))
                    await reply("250 OK")
                elif verb == "DATA":
                    await reply("354 go on")
                    data = await reader.readuntil(b"\r\n.\r\n")
                    self.messages.append((sender, rcpts, data[: -len(b"\r\n.\r\n")]))
                    await reply("250 queued")
                elif verb == "QUIT":
                    await reply("221 bye")
                    break
                else:
                    await reply("250 OK")
        finally:
            writer.close()
