"""The database room: connections (``connection``), the embedded server (``embedded``),
migrations (``migrations``), named SQL blocks (``queries``) and LISTEN (``listener``).

``from vq_core import db`` gives the connection helpers: ``db.connect``,
``db.create_pool``, ``db.resolve_dsn`` and ``db.DB_ERRORS``.
"""

from vq_core.db.connection import DB_ERRORS, connect, create_pool, init_connection, resolve_dsn

__all__ = ["DB_ERRORS", "connect", "create_pool", "init_connection", "resolve_dsn"]
