"""`vq submit`, `vq jobs show` and `vq stats` never import the web stack, nor any plugin,
nor pluggy, nor the store's records of the parts they do not use: each runs as a real
process against a real database, and reports at exit which packages and vq modules it
loaded. (Their speed is load/bench_cli.py's, measured as ratios.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.import_probe import PROBE

WEB_STACK = {"nicegui", "fastapi", "starlette", "uvicorn"}
# Where plugins' commands and hooks live: loaded only for a command that may be theirs.
PLUGINS = {"vq_ui", "vq_plugins"}
# The plugin machinery: pluggy, made on first use of ``vq_core.hookimpl`` or a plugin manager.
PLUGGY = {"pluggy"}
# Made on first use of the parts of the store these commands do not call (each record
# module imported, one for every one of them).
RECORDS = "vq_core.store.records."


def run_vq(
    dsn: str, tmp_path: Path, *args: str, preimport: str = ""
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``vq ARGS`` in a process of its own: the process and the packages it loaded,
    with vq's own modules by their full names."""
    out = tmp_path / f"modules-{len(list(tmp_path.iterdir()))}.json"
    env = dict(
        os.environ,
        VQ_DATABASE_URL=dsn,
        VQ_DATA_DIR=str(tmp_path),
        PROBE_OUT=str(out),
        PROBE_PREIMPORT=preimport,
    )
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc, set(json.loads(out.read_text()))


@pytest.fixture
def job_id(dsn: str, tmp_path: Path) -> str:
    proc, _ = run_vq(dsn, tmp_path, "submit", "doubt", "--payload", '{"question": "why?"}')
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()[0]


@pytest.mark.parametrize(
    "args",
    [
        ("submit", "doubt", "--payload", '{"question": "why is the sky blue?"}'),
        ("submit", "doubt", "--json"),
        ("jobs", "show", "JOB_ID"),
        ("jobs", "show", "JOB_ID", "--json"),
        ("stats",),
        ("stats", "--json"),
    ],
    ids=" ".join,
)
def test_the_quick_commands_load_neither_the_web_stack_nor_plugins(
    dsn: str, tmp_path: Path, job_id: str, args: tuple[str, ...]
) -> None:
    proc, loaded = run_vq(dsn, tmp_path, *(job_id if a == "JOB_ID" else a for a in args))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()  # it did its work: an id, a job or the counts
    assert not loaded & WEB_STACK, f"vq {' '.join(args)} imported {sorted(loaded & WEB_STACK)}"
    assert not loaded & PLUGINS, f"vq {' '.join(args)} loaded plugins {sorted(loaded & PLUGINS)}"
    assert not loaded & PLUGGY, f"vq {' '.join(args)} imported pluggy"
    records = sorted(m for m in loaded if m.startswith(RECORDS))
    assert not records, f"vq {' '.join(args)} made the records of {records}"
    if args[0] != "submit":
        assert "vq_core.validation" not in loaded, f"vq {' '.join(args)} imported validation"


def test_the_report_sees_the_web_stack_when_it_is_loaded(dsn: str, tmp_path: Path) -> None:
    # The same probe, with starlette imported first: the check above can fail.
    proc, loaded = run_vq(dsn, tmp_path, "stats", preimport="starlette")
    assert proc.returncode == 0, proc.stderr
    assert "starlette" in loaded


def test_the_report_sees_pluggy_and_records_when_they_are_loaded(dsn: str, tmp_path: Path) -> None:
    # The checks above can fail: a plugin's marker imports pluggy, a record its module.
    proc, loaded = run_vq(
        dsn, tmp_path, "stats", preimport="vq_core.plugins vq_core.store.records.accounts"
    )
    assert proc.returncode == 0, proc.stderr
    assert "pluggy" in loaded
    assert "vq_core.store.records.accounts" in loaded


def test_hookimpl_is_still_vq_cores_marker() -> None:
    # Made on first use, it is the one marker plugins import (``from vq_core import hookimpl``).
    import pluggy

    import vq_core
    from vq_core import hookimpl

    assert isinstance(hookimpl, pluggy.HookimplMarker)
    assert hookimpl.project_name == "vq"
    assert vq_core.hookimpl is hookimpl
    with pytest.raises(AttributeError):
        vq_core.no_such_name  # noqa: B018


def test_help_still_lists_the_plugins_commands(dsn: str, tmp_path: Path) -> None:
    proc, loaded = run_vq(dsn, tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.splitlines() if line.startswith("  ")}
    # vq's own, and the ui plugin's (users, tokens, e2e)
    assert {"submit", "stats", "jobs", "alerts", "db", "users", "tokens", "e2e"} <= listed
    assert loaded >= PLUGINS


def test_a_plugins_subcommand_of_a_core_group_is_found(dsn: str, tmp_path: Path) -> None:
    # `vq services serve` comes from the reference services plugin, inside vq's own group.
    proc, _ = run_vq(dsn, tmp_path, "services", "serve", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage: vq services serve" in proc.stdout
    proc, _ = run_vq(dsn, tmp_path, "services", "--help")
    assert proc.returncode == 0, proc.stderr
    assert {"list", "set", "serve"} <= {
        line.split()[0] for line in proc.stdout.splitlines() if line.startswith("  ")
    }


@pytest.mark.parametrize(
    ("given", "expected"), [(None, "__all__"), ("", ""), ("logfire", "logfire")]
)
def test_vq_turns_pydantic_plugins_off_unless_the_user_chose(
    given: str | None, expected: str
) -> None:
    """The command line sets PYDANTIC_DISABLE_PLUGINS before pydantic looks for plugins,
    and an explicit value, even an empty one, is left as the user gave it."""
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    if given is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = given
    # Settings loaded as every command loads them; pydantic's loader keeps what it
    # found, None when it never looked.
    code = (
        "import os, vq_core.cli.main, pydantic.plugin._loader as loader; "
        "vq_core.cli.main.load_settings(); "
        "print(repr(os.environ['PYDANTIC_DISABLE_PLUGINS']), loader._plugins is not None)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert proc.stdout.split() == [repr(expected), str(expected != "__all__")]
