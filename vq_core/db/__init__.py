"""The database room: connections (``connection``), the embedded server (``embedded``),
migrations (``migrations``), named SQL blocks (``queries``) and LISTEN (``listener``).

``from vq_core import db`` gives the connection helpers: ``db.connect``,
``db.create_pool``, ``db.close_pool``, ``db.resolve_dsn`` (``db.resolve_listen_dsn``
for LISTEN and migrations), the bounds they keep
(``db.ConnectOptions``, ``db.connect_options``), and the errors callers catch without
importing asyncpg: ``db.DB_ERRORS``, ``db.CONNECT_ERRORS`` and ``db.DataError``.
"""

from vq_core.db.connection import (
    CONNECT_ERRORS,
    DB_ERRORS,
    ConnectOptions,
    DataError,
    close_pool,
    connect,
    connect_options,
    create_pool,
    init_connection,
    resolve_dsn,
    resolve_listen_dsn,
)

__all__ = [
    "CONNECT_ERRORS",
    "DB_ERRORS",
    "ConnectOptions",
    "DataError",
    "close_pool",
    "connect",
    "connect_options",
    "create_pool",
    "init_connection",
    "resolve_dsn",
    "resolve_listen_dsn",
]
