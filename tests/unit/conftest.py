"""tests/unit holds tests that need no database and start no process: a test here that
asks for a database fixture is a mistake of placement, reported at collection."""

from __future__ import annotations

import pytest

DATABASE_FIXTURES = {"server_dsn", "template_db", "dsn", "empty_dsn", "settings", "store"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse unit tests that use the database (they belong in tests/integration)."""
    here = __file__.rsplit("/", 1)[0]
    for item in items:
        if not str(item.path).startswith(here + "/"):
            continue
        used = DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
        if used:
            raise pytest.UsageError(
                f"{item.nodeid} uses {', '.join(sorted(used))}: move it to tests/integration"
            )
