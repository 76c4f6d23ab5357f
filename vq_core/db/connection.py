"""Connections: the asyncpg pool with vq's codecs, and where the database comes from.

Every connection vq opens for its own work is bounded (``ConnectOptions``): opening it
(``db_connect_timeout``), each statement (``db_statement_timeout``), and TCP keepalives
so that a peer that vanished is noticed on an idle connection too.

Behind PgBouncer in transaction mode (``database_pooler = "pgbouncer"``) each transaction
may run on another server connection: asyncpg then keeps no prepared statement
(``statement_cache_size=0``, so each statement is parsed again in the same round trip as
it runs), and LISTEN and migrations, which need one server session throughout, take the
direct ``listen_database_url`` (``resolve_listen_dsn``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
from dataclasses import dataclass

import asyncpg

from vq_core.config import Settings

#: What a lost or restarting database raises through asyncpg: the worker retries these.
#: A statement or connection that timed out raises ``TimeoutError``, an ``OSError``.
DB_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)

#: What opening or migrating a database that is down or refuses us raises.
CONNECT_ERRORS: tuple[type[Exception], ...] = (OSError, asyncpg.PostgresError)

#: PostgreSQL refused a value as data (SQLSTATE class 22: a NUL in text, a number out of
#: range, a cast that fails): the input is at fault, not the database.
DataError = asyncpg.DataError


@dataclass(frozen=True)
class ConnectOptions:
    """How long to wait for the database, and how to notice that it is gone.

    The defaults are asyncpg's own (60 s to connect, statements unbounded, the
    system's keepalives); ``connect_options(settings)`` gives vq's settings.
    """

    #: Seconds to open a connection: TCP, TLS, start-up and authentication.
    connect_timeout: float = 60.0
    #: Seconds a statement may take; then asyncpg raises ``TimeoutError`` and asks the
    #: server to cancel it. Enforced by the client, so it holds when the server is mute.
    statement_timeout: float | None = None
    #: TCP keepalives (seconds idle before the first probe, seconds between probes,
    #: probes unanswered before the connection is dropped); None leaves the system's.
    keepalives_idle: int | None = None
    keepalives_interval: int = 10
    keepalives_count: int = 3
    #: Named prepared statements asyncpg keeps per connection (its default, 100); 0
    #: behind a transaction pooler, whose server connections change between
    #: transactions, so that a statement prepared on one is never run on another.
    statement_cache_size: int = 100


def connect_options(settings: Settings) -> ConnectOptions:
    """The ``db_*`` settings as ``ConnectOptions``."""
    return ConnectOptions(
        connect_timeout=settings.db_connect_timeout,
        statement_timeout=settings.db_statement_timeout,
        keepalives_idle=settings.db_keepalives_idle,
        keepalives_interval=settings.db_keepalives_interval,
        keepalives_count=settings.db_keepalives_count,
        statement_cache_size=0 if settings.database_pooler == "pgbouncer" else 100,
    )


async def init_connection(conn: asyncpg.Connection) -> None:
    """Decode json/jsonb to Python objects on every pooled connection."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def set_keepalives(conn: asyncpg.Connection, options: ConnectOptions) -> None:
    """Turn TCP keepalives on for ``conn`` (nothing to do over a unix socket)."""
    if options.keepalives_idle is None:
        return
    # asyncpg has no keepalive option and no public way to the socket
    # (MagicStack/asyncpg#606): its transport is the way its maintainers suggest.
    transport = getattr(conn, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    # Linux names the idle time TCP_KEEPIDLE, macOS TCP_KEEPALIVE.
    idle = getattr(socket, "TCP_KEEPIDLE", None) or getattr(socket, "TCP_KEEPALIVE", None)
    for option, value in (
        (idle, options.keepalives_idle),
        (getattr(socket, "TCP_KEEPINTVL", None), options.keepalives_interval),
        (getattr(socket, "TCP_KEEPCNT", None), options.keepalives_count),
    ):
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


async def _init_pooled(options: ConnectOptions, conn: asyncpg.Connection) -> None:
    set_keepalives(conn, options)
    await init_connection(conn)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Hand a released connection back as it is.

    asyncpg's default reset sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`` on every release: a round trip per claim and per completion batch (a
    tenth of a worker's CPU in a drain). vq leaves no session state on a pooled
    connection to undo: its advisory locks are transaction locks, its cursors live in
    transactions, LISTEN has connections of its own, and it never runs ``SET`` outside
    a function's definition (tests/unit/test_session_state.py reads every SQL block for
    that). asyncpg still rolls back a transaction left open before calling this.
    """
    del conn


async def create_pool(
    dsn: str, min_size: int = 2, max_size: int = 10, options: ConnectOptions | None = None
) -> asyncpg.Pool:
    """A pool whose connections speak JSON natively, bounded by ``options``."""
    options = options or ConnectOptions()
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=functools.partial(_init_pooled, options),
        reset=_keep_session,
        timeout=options.connect_timeout,
        command_timeout=options.statement_timeout,
        statement_cache_size=options.statement_cache_size,
    )
    assert pool is not None  # create_pool returns None only if awaited twice
    return pool


async def close_pool(pool: asyncpg.Pool, timeout: float) -> bool:
    """Close ``pool`` gracefully within ``timeout`` seconds, else drop its connections.

    Closing waits for every connection to be given back and for the server's goodbye;
    a stalled database gives neither, so past ``timeout`` the sockets are just closed
    (the server rolls back whatever they had open).

    :returns: False when the connections had to be dropped.
    """
    try:
        await asyncio.wait_for(pool.close(), timeout=max(timeout, 0.0))
    except TimeoutError:
        pool.terminate()
        return False
    return True


async def connect(dsn: str, options: ConnectOptions | None = None) -> asyncpg.Connection:
    """One connection (for LISTEN and migrations) with the same codecs as the pool."""
    options = options or ConnectOptions()
    conn: asyncpg.Connection = await asyncpg.connect(
        dsn,
        timeout=options.connect_timeout,
        command_timeout=options.statement_timeout,
        statement_cache_size=options.statement_cache_size,
    )
    try:
        set_keepalives(conn, options)
        await init_connection(conn)
    except BaseException:
        conn.terminate()
        raise
    return conn


async def resolve_dsn(settings: Settings) -> str:
    """The configured server, or else the embedded one under the data folder."""
    if settings.database_url:
        return settings.database_url
    from vq_core.db.embedded import embedded_dsn

    # Starting PostgreSQL blocks for seconds; keep the event loop free meanwhile.
    return await asyncio.to_thread(embedded_dsn, settings.data_dir)


async def resolve_listen_dsn(settings: Settings) -> str:
    """Where LISTEN and migrations connect: ``listen_database_url`` when set (a direct
    connection past a pooler), else the same server as the pool.

    Both need one server session throughout (a listener hears only on the session that
    ran LISTEN; the migrations' advisory lock is a session lock), which a pooler in
    transaction mode does not give.
    """
    if settings.listen_database_url:
        return settings.listen_database_url
    return await resolve_dsn(settings)
