"""The command line: human and JSON output, and exit code 2 for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from vq_core.cli.main import cli


@pytest.fixture
def runner(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("VQ_DATABASE_URL", dsn)
    monkeypatch.setenv("VQ_DATA_DIR", str(tmp_path))
    return CliRunner()


DEEP_5000 = '{"a":' * 5000 + "1" + "}" * 5000  # json and pydantic recurse: RecursionError
DEEP_150 = '{"a":' * 75 + "[" * 75 + "1" + "]" * 75 + "}" * 75
LONG_NUMBER = '{"q": ' + "1" * 5000 + "}"  # beyond int()'s default limit on digits
TOO_LARGE = json.dumps({"q": "x" * 300_000})


def invoke(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_submit_list_show_cancel_retry(runner: CliRunner) -> None:
    code, out = invoke(
        runner,
        "submit",
        "doubt",
        "--payload",
        '{"question": "Why is the sky blue?"}',
        "--priority",
        "high",
        "--json",
    )
    assert code == 0
    job_id = json.loads(out)["id"]
    code, out = invoke(runner, "jobs", "list")
    assert code == 0 and job_id in out and "high" in out and "Why is the sky" in out
    code, out = invoke(runner, "jobs", "list", "--status", "completed", "--json")
    assert json.loads(out)["jobs"] == []
    code, out = invoke(runner, "jobs", "show", job_id, "--json")
    data = json.loads(out)
    assert data["status"] == "queued" and [e["event"] for e in data["events"]] == ["created"]
    code, out = invoke(runner, "jobs", "cancel", job_id)
    assert code == 0 and "cancelled" in out
    code, out = invoke(runner, "jobs", "retry", job_id, "--json")
    assert code == 0 and json.loads(out)["status"] == "queued"
    code, out = invoke(runner, "jobs", "show", job_id)
    assert "history:" in out and "retried" in out


def test_submit_is_idempotent_with_a_key(runner: CliRunner) -> None:
    args = ("submit", "doubt", "--idempotency-key", "abc", "--json")
    first = json.loads(invoke(runner, *args)[1])
    second = json.loads(invoke(runner, *args)[1])
    assert first["id"] == second["id"] and first["created"] and not second["created"]


def test_stats_human_and_json(runner: CliRunner) -> None:
    invoke(runner, "submit", "doubt")
    code, out = invoke(runner, "stats", "--json")
    assert code == 0 and json.loads(out)["by_status"]["queued"] == 1
    code, out = invoke(runner, "stats")
    assert code == 0 and "queued 1" in out


# Each (arguments, what the one error line says): one database for all, nothing stored.
BAD_INPUT = [
    (("submit", "doubt", "--payload", "{nope"), "payload: not valid JSON"),
    (("submit", "doubt", "--payload", "[1]"), "payload"),
    (("submit", "bad type!"), "job_type"),
    (("submit", "doubt", "--max-retries", "-1"), "max_retries"),
    (("submit", "doubt", "--run-at", "tomorrow"), "run_at"),
    (("submit", "doubt", "--priority", "asap"), "priority"),
    (("jobs", "show", "not-a-uuid"), "not a job id"),
    (("jobs", "show", "00000000-0000-0000-0000-000000000000"), "no job"),
    (("jobs", "list", "--sort", "payload"), "sort"),
    # What PostgreSQL cannot store, refused by vq_core.validation before the store:
    (
        ("submit", "doubt", "--payload", '{"q":"a\\u0000b"}'),
        "payload: text may not contain NUL",
    ),
    (("submit", "doubt", "--payload", '{"a\\u0000":1}'), "payload: text may not contain NUL"),
    (("submit", "doubt", "--payload", '{"q":"\\ud800"}'), "payload: text may not contain lone"),
    (("submit", "doubt", "--payload", '{"q":"\udcff"}'), "payload: text may not contain lone"),
    (("submit", "doubt", "--payload", '{"q": NaN}'), "payload: numbers must be finite"),
    (("submit", "doubt", "--payload", '{"q": -Infinity}'), "payload: numbers must be finite"),
    (("submit", "doubt", "--payload", '{"q": 1e400}'), "payload: numbers must be finite"),
    (("submit", "doubt", "--payload", DEEP_5000), "payload: nested deeper than 100 levels"),
    (("submit", "doubt", "--payload", DEEP_150), "payload: nested deeper than 100 levels"),
    (("submit", "doubt", "--payload", LONG_NUMBER), "payload: a number has too many digits"),
    (("submit", "doubt", "--payload", TOO_LARGE), "payload is larger than 262144 bytes"),
    (("submit", "doubt", "--run-at", "9999-12-31T23:59:59-23:00"), "run_at: out of range"),
    (("submit", "doubt", "--run-at", "0001-01-01T00:00:00+05:00"), "run_at: out of range"),
    (("submit", "doubt", "--idempotency-key", "a\x00b"), "idempotency_key: text may not"),
    (("submit", "doubt", "--idempotency-key", "\udcff"), "idempotency_key: Input should be"),
    (("submit", "do\x00ubt"), "job_type: String should match"),
]


def test_bad_input_exits_2_with_a_message(runner: CliRunner, subtests: pytest.Subtests) -> None:
    for args, message in BAD_INPUT:
        with subtests.test(args=" ".join(args)[:60]):
            result = runner.invoke(cli, list(args))
            assert result.exit_code == 2, result.output
            assert message in result.output
            assert "Traceback" not in result.output
            lines = result.stderr.splitlines()
            assert lines[-1].startswith("Error: ") and message in lines[-1]
            assert len(lines) == 1 or lines[0].startswith("Usage:")  # click's own usage errors
            assert result.stdout == ""
    # Nothing any of them asked for was stored.
    assert json.loads(invoke(runner, "jobs", "list", "--json")[1])["jobs"] == []


def test_submit_stores_run_at_in_utc(runner: CliRunner) -> None:
    # +23:00 is valid ISO 8601 but beyond PostgreSQL's offsets (15:59): UTC it is.
    args = ("submit", "doubt", "--run-at", "2030-01-01T00:00:00+23:00", "--json")
    job_id = json.loads(invoke(runner, *args)[1])["id"]
    shown = json.loads(invoke(runner, "jobs", "show", job_id, "--json")[1])
    assert shown["run_at"] == "2029-12-31T01:00:00+00:00"


def test_cancel_of_finished_job_is_refused(runner: CliRunner) -> None:
    job_id = json.loads(invoke(runner, "submit", "doubt", "--json")[1])["id"]
    invoke(runner, "jobs", "cancel", job_id)
    result = runner.invoke(cli, ["jobs", "cancel", job_id])
    assert result.exit_code == 2 and "cannot cancel" in result.output


def test_migrate_is_idempotent(runner: CliRunner) -> None:
    code, out = invoke(runner, "migrate")
    assert code == 0 and "up to date" in out


def test_plugins_lists_builtins(runner: CliRunner) -> None:
    code, out = invoke(runner, "plugins", "--json")
    assert code == 0
    data = json.loads(out)
    assert "noop" in {p["name"] for p in data["plugins"]}
    assert data["services"]["noop"] == ["noop"]


def test_unknown_plugin_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["plugins", "--plugin", "no_such_module_here"])
    assert result.exit_code == 2 and "cannot load plugin" in result.output


def vq_process(database_url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``vq ARGS`` as a real process, as a user's shell would."""
    env = dict(os.environ, VQ_DATABASE_URL=database_url, VQ_DATA_DIR=str(data_dir))
    return subprocess.run(
        [sys.executable, "-m", "vq_core.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_configuration_exits_2(tmp_path: Path) -> None:
    proc = vq_process("mysql://nope", tmp_path, "stats")
    assert proc.returncode == 2
    assert "database_url" in proc.stderr and "Traceback" not in proc.stderr


def test_unreachable_database_is_a_clean_error(tmp_path: Path) -> None:
    proc = vq_process("postgresql://postgres@127.0.0.1:1/none", tmp_path, "stats")
    assert proc.returncode == 1
    assert "cannot use the database" in proc.stderr and "Traceback" not in proc.stderr


def test_worker_refuses_an_unmigrated_database(empty_dsn: str, tmp_path: Path) -> None:
    proc = vq_process(empty_dsn, tmp_path, "worker")
    assert proc.returncode == 1
    assert "needs migrations" in proc.stderr and "vq migrate" in proc.stderr
    assert "Traceback" not in proc.stderr
