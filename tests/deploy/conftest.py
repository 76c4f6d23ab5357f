"""tests/deploy checks the deployment files of deploy/ offline (schemas, linters, unit
parsers): no database and no vq process. A test here that asks for a database fixture
belongs in tests/integration or tests/e2e, and is refused at collection."""

from __future__ import annotations

from pathlib import Path

import pytest

DATABASE_FIXTURES = {"server_dsn", "template_db", "dsn", "empty_dsn", "settings", "store"}
ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse deploy tests that use the database."""
    here = str(Path(__file__).parent)
    for item in items:
        if not str(item.path).startswith(here + "/"):
            continue
        used = DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
        if used:
            raise pytest.UsageError(
                f"{item.nodeid} uses {', '.join(sorted(used))}: tests/deploy is offline"
            )
