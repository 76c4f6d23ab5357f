"""The pooler settings: ``listen_database_url`` beside a pooled ``database_url``, and
``database_pooler`` turning asyncpg's statement cache off (tests/e2e/test_pgbouncer.py
runs them through a real PgBouncer)."""

from __future__ import annotations

import pytest

from vq_core import db
from vq_core.config import ConfigError, load_settings

POOLED = "postgresql://vq@127.0.0.1:6432/vq"
DIRECT = "postgresql://vq@127.0.0.1:5432/vq"


def test_pgbouncer_turns_the_statement_cache_off() -> None:
    plain = load_settings(database_url=DIRECT)
    pooled = load_settings(
        database_url=POOLED, listen_database_url=DIRECT, database_pooler="pgbouncer"
    )
    assert db.connect_options(plain).statement_cache_size == 100  # asyncpg's default
    assert db.connect_options(pooled).statement_cache_size == 0


async def test_listen_and_migrations_go_to_the_direct_url_when_set() -> None:
    pooled = load_settings(
        database_url=POOLED, listen_database_url=DIRECT, database_pooler="pgbouncer"
    )
    assert await db.resolve_dsn(pooled) == POOLED
    assert await db.resolve_listen_dsn(pooled) == DIRECT
    assert await db.resolve_listen_dsn(load_settings(database_url=DIRECT)) == DIRECT


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"database_pooler": "pgbouncer", "database_url": POOLED}, "listen_database_url"),
        ({"database_pooler": "pgbouncer"}, "database_url"),
        ({"listen_database_url": DIRECT}, "set database_url too"),
        ({"database_url": POOLED, "listen_database_url": "mysql://x"}, "postgresql://"),
        ({"database_pooler": "pgpool"}, "database_pooler"),
    ],
)
def test_settings_a_pooler_cannot_work_with_are_refused(
    values: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(**values)
