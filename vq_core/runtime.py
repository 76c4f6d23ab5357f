"""Wiring a vq process: settings -> database -> plugins -> worker (+ web server)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from vq_core import db
from vq_core.config import ConfigError, Settings
from vq_core.db import migrations
from vq_core.plugins import PluginManager, collect_services, make_plugin_manager
from vq_core.store import Store
from vq_core.worker.process import Worker

log = logging.getLogger("vq")
T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database cannot be reached or is not migrated; the message says what to do."""


@dataclass
class Runtime:
    """What a command needs: settings, the database and plugins."""

    settings: Settings
    dsn: str
    store: Store
    pm: PluginManager


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings, plugins: Iterable[str] = (), migrate: bool = False
) -> AsyncIterator[Runtime]:
    """Connect (starting the embedded server if needed), optionally migrate, load plugins."""
    pm = make_plugin_manager(settings, plugins)
    dsn = await db.resolve_dsn(settings)
    try:
        if migrate:
            conn = await db.connect(dsn)
            try:
                applied = await migrations.migrate(conn)
            finally:
                await conn.close()
            for m in applied:
                log.info("applied migration %04d_%s", m.version, m.name)
        pool = await db.create_pool(dsn, settings.pool_min_size, settings.pool_max_size)
    except db.CONNECT_ERRORS as exc:
        raise DatabaseUnavailable(f"cannot use the database: {exc}") from None
    store = Store(pool, settings.default_max_retries)
    try:
        yield Runtime(settings, dsn, store, pm)
    finally:
        await store.close()


async def require_migrated(runtime: Runtime) -> None:
    """Refuse to start a worker on a schema older than this code."""
    pending = await runtime.store.pending_migrations()
    if pending:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
        raise DatabaseUnavailable(f"database needs migrations ({names}); run `vq migrate`")


def run_coroutine(coro: Coroutine[Any, Any, T], event_loop: str = "auto") -> T:
    """Run ``coro`` to completion on uvloop (when installed and not refused) or asyncio.

    uvloop roughly halves the event loop's own cost per job; the bare-SQL baseline
    vq is measured against runs on it too.
    """
    if event_loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if event_loop == "uvloop":
                coro.close()
                raise ConfigError("event_loop: uvloop is not installed") from None
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT ask for a graceful stop; a second SIGINT is left to Python."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def serve(
    settings: Settings,
    plugins: Iterable[str] = (),
    *,
    web: bool,
    migrate: bool,
    stop: asyncio.Event | None = None,
) -> None:
    """Run a worker (and, for ``vq run``, the web server) until stopped."""
    stop = stop or asyncio.Event()
    install_signal_handlers(stop)
    async with open_runtime(settings, plugins, migrate=migrate) as rt:
        await require_migrated(rt)
        services = collect_services(rt.pm, settings)
        if not services:
            raise ConfigError("no video service is registered; check your plugins")
        worker = Worker(rt.store, settings, rt.pm, services, rt.dsn)
        tasks = [asyncio.create_task(worker.run(stop), name="vq-worker")]
        if web:
            server = rt.pm.hook.vq_web_server(settings=settings, store=rt.store)
            if server is None:
                log.warning("no web server plugin installed (pip install 'vq[ui]')")
            else:
                tasks.append(asyncio.create_task(server.serve(stop), name="vq-web"))
                print(f"vq admin page: {server.url}/queue", flush=True)
        try:
            await _until_first_exit(tasks, stop)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _until_first_exit(tasks: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
    """Wait for stop; if a part dies first, stop the rest and re-raise its error."""
    stop_wait = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stop_wait], return_when=asyncio.FIRST_COMPLETED)
    stop_wait.cancel()
    for task in done:
        if task is not stop_wait and task.exception() is not None:
            stop.set()
            raise task.exception()  # type: ignore[misc]
