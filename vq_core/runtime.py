"""Wiring a vq process: settings -> database -> plugins -> worker (+ web server)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections.abc import AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from vq_core import db, tracing
from vq_core.config import ConfigError, Settings
from vq_core.db import migrations
from vq_core.db.embedded import EmbeddedError, hold_embedded
from vq_core.redact import redact_urls
from vq_core.store import Store

# The worker (and its scheduler, alert engine and HTTP client) is imported by serve(),
# and the plugin manager (pluggy) where plugins are loaded: a command that only uses the
# store (``vq stats``) loads none of them.
if TYPE_CHECKING:
    from vq_core.plugins import PluginManager
    from vq_core.web_server import WebServer

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
    #: Plugin modules named beyond the entry points (``--plugin``), for :attr:`pm`.
    plugins: tuple[str, ...] = ()
    #: Event-loop time by which the pool must be closed when the runtime ends (a
    #: worker's shutdown deadline); None: ``shutdown_db_timeout`` from then.
    close_by: float | None = None
    #: Where LISTEN connects: ``listen_database_url`` past a pooler, else ``dsn``.
    listen_dsn: str = ""
    _pm: PluginManager | None = field(default=None, repr=False)

    @property
    def pm(self) -> PluginManager:
        """The plugin manager, built on first use: commands that only use the store
        never import a plugin.

        :raises ConfigError: a named plugin cannot be imported or implements an unknown hook.
        """
        if self._pm is None:
            from vq_core.plugins import make_plugin_manager

            self._pm = make_plugin_manager(self.settings, self.plugins)
        return self._pm


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings,
    plugins: Iterable[str] = (),
    migrate: bool = False,
    *,
    load_plugins: bool = True,
    pool_min_size: int | None = None,
) -> AsyncIterator[Runtime]:
    """Connect (starting the embedded server if needed), optionally migrate, load plugins.

    ``load_plugins=False`` leaves them to the first use of :attr:`Runtime.pm`;
    ``pool_min_size`` overrides the setting (a one-shot command needs one connection).
    """
    plugins = tuple(plugins)
    pm = None
    if load_plugins:
        from vq_core.plugins import make_plugin_manager

        # Loaded before connecting: a bad plugin is reported first.
        pm = make_plugin_manager(settings, plugins)
    # Traces when the otel extra is installed and OTEL_* ask for them; nil cost otherwise.
    tracing.configure_from_env()
    try:
        dsn = await db.resolve_dsn(settings)
        listen_dsn = await db.resolve_listen_dsn(settings)
    except EmbeddedError as exc:
        raise DatabaseUnavailable(str(exc)) from None
    options = db.connect_options(settings)
    try:
        if migrate:
            # No statement timeout: building an index on a large table may rightly
            # take longer than any statement of the running queue.
            # Over the direct URL: the migrations' session lock needs one server session.
            conn = await db.connect(
                listen_dsn, dataclasses.replace(options, statement_timeout=None)
            )
            try:
                applied = await migrations.migrate(conn)
            finally:
                await conn.close()
            for m in applied:
                log.info("applied migration %04d_%s", m.version, m.name)
        min_size = min(pool_min_size or settings.pool_min_size, settings.pool_max_size)
        pool = await db.create_pool(dsn, min_size, settings.pool_max_size, options)
    except db.CONNECT_ERRORS as exc:
        reason = str(exc) or f"no answer within {settings.db_connect_timeout:g}s"
        raise DatabaseUnavailable(f"cannot use the database: {reason}") from None
    store = Store(pool, settings.default_max_retries)
    runtime = Runtime(settings, dsn, store, plugins, listen_dsn=listen_dsn, _pm=pm)
    try:
        yield runtime
    finally:
        loop = asyncio.get_running_loop()
        close_by = runtime.close_by
        if close_by is None:
            close_by = loop.time() + settings.shutdown_db_timeout
        if not await db.close_pool(pool, close_by - loop.time()):
            log.warning("the database did not answer in time; its connections were dropped")


@contextlib.asynccontextmanager
async def _hold_database(settings: Settings) -> AsyncIterator[None]:
    """Hold the embedded server (when no ``database_url`` is set) while the block runs.

    On the way out, whatever ends the block (a signal's graceful stop, an error), the server
    is stopped unless another ``vq run`` or ``vq worker`` still holds it, so it does not
    outlive this process.
    """
    if settings.database_url:
        yield
        return
    try:
        server = await asyncio.to_thread(hold_embedded, settings.data_dir)
    except EmbeddedError as exc:
        raise DatabaseUnavailable(str(exc)) from None
    try:
        yield
    finally:
        try:
            if await asyncio.to_thread(server.release):
                log.info("stopped the embedded PostgreSQL in %s", server.data_dir)
        except EmbeddedError as exc:
            log.error("%s", exc)


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
    work: bool = True,
) -> None:
    """Run a worker (and, for ``vq run``, the web server) until stopped; ``work=False``
    runs the web server alone (``vq run --no-worker``, web processes behind a load
    balancer while ``vq worker`` processes do the renders)."""
    from vq_core.plugins import collect_services
    from vq_core.worker.process import Worker

    stop = stop or asyncio.Event()
    install_signal_handlers(stop)
    async with _hold_database(settings), open_runtime(settings, plugins, migrate=migrate) as rt:
        await require_migrated(rt)
        print_data_locations(settings, rt.dsn)
        services = collect_services(rt.pm, settings) if work else {}
        if work and not services:
            raise ConfigError("no video service is registered; check your plugins")
        # The web server binds its port now, before the worker starts: a busy port ends
        # start-up with one line instead of a worker left running without its page.
        server = _web_server(rt, settings) if web else None
        if not work and server is None:
            raise ConfigError("--no-worker needs the admin page (pip install 'vq[ui]')")
        worker = Worker(rt.store, settings, rt.pm, services, rt.listen_dsn) if work else None
        tasks = [asyncio.create_task(worker.run(stop), name="vq-worker")] if worker else []
        if server is not None:
            tasks.append(asyncio.create_task(server.serve(stop), name="vq-web"))
            print(f"vq admin page: {server.url}/queue", flush=True)
        try:
            await _until_first_exit(tasks, stop)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if worker is not None:
                rt.close_by = worker.shutdown_deadline


def print_data_locations(settings: Settings, dsn: str) -> None:
    """Say where this process keeps its data: the data directory, the database (the
    embedded server's pgdata and DSN, with its socket directory) and rendered media."""
    data_dir = settings.data_dir.expanduser().resolve()
    if settings.database_url:
        database = redact_urls(dsn)  # a configured URL may carry a password
    else:
        database = f"embedded PostgreSQL in {data_dir / 'pgdata'} ({dsn})"
    print(f"vq data: {data_dir}", flush=True)
    print(f"vq database: {database}", flush=True)
    print(f"vq media: {settings.resolved_media_dir.expanduser().resolve()}", flush=True)


def _web_server(rt: Runtime, settings: Settings) -> WebServer | None:
    try:
        server: WebServer | None = rt.pm.hook.vq_web_server(settings=settings, store=rt.store)
    except OSError as exc:
        raise ConfigError(
            f"port: cannot listen on {settings.host}:{settings.port} ({exc.strerror or exc}); "
            "choose another with --port or VQ_PORT"
        ) from None
    if server is None:
        log.warning("no web server plugin installed (pip install 'vq[ui]')")
    return server


async def _until_first_exit(tasks: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
    """Wait for stop; if a part dies first, stop the rest and re-raise its error."""
    stop_wait = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stop_wait], return_when=asyncio.FIRST_COMPLETED)
    stop_wait.cancel()
    for task in done:
        if task is not stop_wait and task.exception() is not None:
            stop.set()
            raise task.exception()  # type: ignore[misc]
