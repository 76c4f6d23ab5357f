"""The CLI's steering commands on real PostgreSQL: ``vq types``, ``vq services``,
bulk ``vq jobs retry|cancel``, ``vq workers``, ``vq submit --group-key`` and the
types ``vq stats`` warns about."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner, Result

from vq_core import db
from vq_core.cli.common import cli_actor
from vq_core.cli.main import cli
from vq_core.errors import error_record
from vq_core.models import ErrorCategory, JobStatus, NewJob
from vq_core.store import Store

T = TypeVar("T")


@pytest.fixture
def runner(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("VQ_DATABASE_URL", dsn)
    monkeypatch.setenv("VQ_DATA_DIR", str(tmp_path))
    return CliRunner()


def invoke(runner: CliRunner, *args: str, stdin: str | None = None) -> Result:
    return runner.invoke(cli, list(args), input=stdin, catch_exceptions=False)


def ok_json(runner: CliRunner, *args: str) -> Any:
    result = invoke(runner, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def in_db(dsn: str, fn: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``fn`` with a store over the test's database (the CLI opens its own)."""

    async def body() -> T:
        store = Store(await db.create_pool(dsn, min_size=1, max_size=4))
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(body())


def assert_usage_error(result: Result, *words: str) -> None:
    """Exit 2, one ``Error:`` line naming the problem, nothing on stdout."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert result.stdout == ""


def failed_jobs(dsn: str, job_type: str, n: int, category: str, service: str = "svc") -> list[str]:
    """``n`` jobs of ``job_type`` failed for good with ``category``."""

    async def make(store: Store) -> list[str]:
        made = await store.enqueue_many([NewJob(job_type) for _ in range(n)])
        claimed = await store.claim("w-test", {job_type: service}, n, 60)
        assert len(claimed) == n
        for job in claimed:
            error = error_record(RuntimeError("boom"), ErrorCategory(category), 1, False)
            assert await store.fail("w-test", job.id, error, None) is JobStatus.FAILED
        return [str(e.id) for e in made]

    return in_db(dsn, make)


def statuses(dsn: str) -> dict[str, int]:
    async def count(store: Store) -> dict[str, int]:
        rows = await store.pool.fetch(
            "SELECT status::text AS s, count(*) AS n FROM vq.jobs GROUP BY status"
        )
        return {r["s"]: r["n"] for r in rows}

    return in_db(dsn, count)


# -- vq types ---------------------------------------------------------------------------


def test_types_set_list_history_round_trip(runner: CliRunner) -> None:
    assert invoke(runner, "submit", "doubt").exit_code == 0
    data = ok_json(
        runner, "types", "set", "doubt", "--pause", "--service", "manim", "--max-running", "4"
    )
    assert data["paused"] is True and data["service"] == "manim" and data["max_running"] == 4
    assert data["updated_by"] == cli_actor().name

    (doubt,) = ok_json(runner, "types", "list")["types"]
    assert doubt["job_type"] == "doubt" and doubt["state"] == "paused"
    assert doubt["settings"]["max_running"] == 4 and doubt["counts"]["ready"] == 1
    human = invoke(runner, "types", "list").output
    assert "doubt: paused, service manim" in human and "max running 4" in human
    assert f"by {cli_actor().name}" in human

    # "none" clears a cap and the service.
    result = invoke(
        runner,
        "types",
        "set",
        "doubt",
        "--resume",
        "--max-running",
        "none",
        "--service",
        "NONE",
        "--max-running-per-group",
        "2",
        "--timeout",
        "90",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("doubt: running, service (default), timeout 90s")
    settings = ok_json(runner, "types", "list")["types"][0]["settings"]
    assert settings["max_running"] is None and settings["service"] is None
    assert settings["paused"] is False and settings["max_running_per_group"] == 2
    assert settings["timeout_s"] == 90

    changes = ok_json(runner, "types", "history", "doubt")["changes"]
    assert [c["via"] for c in changes] == ["cli", "cli"]
    assert changes[0]["actor"] == cli_actor().name
    assert changes[0]["changes"]["max_running"] == [4, None]  # newest first
    assert changes[1]["changes"]["paused"] == [False, True]
    human = invoke(runner, "types", "history").output
    assert "type:doubt" in human and "max_running 4 -> none" in human and "(cli)" in human


# Each (option and value, words the one error line says).
BAD_SETTINGS = [
    (("--timeout", "0"), "--timeout (timeout_s)"),
    (("--timeout", "nan"), "--timeout (timeout_s): Input should be a finite number"),
    (("--timeout", "none"), "--timeout (timeout_s): may not be null"),
    (("--timeout", "soon"), "--timeout (timeout_s)"),
    (("--max-retries", "-1"), "--max-retries (max_retries)"),
    (("--max-retries", "1.5"), "--max-retries (max_retries)"),
    (("--concurrency", "0"), "--concurrency (concurrency)"),
    (("--max-running", "many"), "--max-running (max_running): Input should be a valid integer"),
    (("--max-running-per-group", "0"), "--max-running-per-group (max_running_per_group)"),
    (("--service", "a\x00b"), "--service (service): text may not contain NUL"),
]


def test_bad_settings_exit_2_and_change_nothing(
    runner: CliRunner, subtests: pytest.Subtests
) -> None:
    assert invoke(runner, "types", "set", "doubt", "--max-running", "3").exit_code == 0
    before = ok_json(runner, "types", "list")
    for args, words in BAD_SETTINGS:
        with subtests.test(args=" ".join(args)):
            assert_usage_error(runner.invoke(cli, ["types", "set", "doubt", *args]), words)
    assert_usage_error(runner.invoke(cli, ["types", "set", "doubt"]), "nothing to change")
    assert_usage_error(runner.invoke(cli, ["types", "set", "bad type!", "--pause"]), "job_type")
    assert ok_json(runner, "types", "list") == before
    assert len(ok_json(runner, "types", "history")["changes"]) == 1


def test_services_set_and_list(runner: CliRunner, dsn: str) -> None:
    in_db(
        dsn,
        lambda s: s.record_service_health("orchestrator", False, "HTTP 503", ["doubt"]),
    )
    result = invoke(runner, "services", "set", "manim", "--max-running", "2")
    assert result.exit_code == 0 and "manim: at most 2 running" in result.output
    rows = {r["service"]: r for r in ok_json(runner, "services", "list")["services"]}
    assert rows["manim"]["max_running"] == 2 and rows["manim"]["seen"] is False
    assert rows["manim"]["limit_updated_by"] == cli_actor().name
    assert rows["orchestrator"]["healthy"] is False and rows["orchestrator"]["job_types"] == [
        "doubt"
    ]
    human = invoke(runner, "services", "list").output
    assert "orchestrator: unhealthy (HTTP 503), running 0" in human
    assert "manim: not seen by any worker, running 0 of at most 2" in human

    assert_usage_error(
        runner.invoke(cli, ["services", "set", "manim", "--max-running", "0"]), "--max-running"
    )
    assert ok_json(runner, "services", "set", "manim", "--max-running", "none") == {
        "service": "manim",
        "max_running": None,
    }
    assert "manim" not in {r["service"] for r in ok_json(runner, "services", "list")["services"]}
    changes = ok_json(runner, "types", "history")["changes"]
    assert [(c["subject"], c["via"], c["changes"]) for c in changes] == [
        ("service:manim", "cli", {"max_running": [2, None]}),
        ("service:manim", "cli", {"max_running": [None, 2]}),
    ]


def test_services_keeps_the_reference_plugins_serve(dsn: str, tmp_path: Path) -> None:
    # The reference services plugin adds its own "vq services" group: both must remain.
    env = dict(os.environ, VQ_DATABASE_URL=dsn, VQ_DATA_DIR=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "vq_core.cli", "services", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    commands = proc.stdout.split("Commands:", 1)[1].split()
    assert {"list", "set", "serve"} <= set(commands)


# -- bulk retry and cancel --------------------------------------------------------------


def test_bulk_retry_by_category_with_yes(runner: CliRunner, dsn: str) -> None:
    api_errors = failed_jobs(dsn, "doubt", 1000, "API_ERROR")
    timeouts = failed_jobs(dsn, "doubt", 5, "TIMEOUT")
    result = invoke(runner, "jobs", "retry", "--category", "API_ERROR", "--type", "doubt", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "retried 1000 jobs"
    assert statuses(dsn) == {"queued": 1000, "failed": 5}
    shown = ok_json(runner, "jobs", "show", api_errors[0])
    assert shown["status"] == "queued"
    assert shown["events"][-1]["event"] == "retried"
    assert shown["events"][-1]["details"] == {"by": cli_actor().name, "via": "cli"}
    assert ok_json(runner, "jobs", "show", timeouts[0])["status"] == "failed"
    # The list takes the same filters.
    listed = ok_json(runner, "jobs", "list", "--category", "timeout", "--limit", "500")
    assert sorted(j["id"] for j in listed["jobs"]) == sorted(timeouts)


def test_bulk_retry_asks_and_n_changes_nothing(runner: CliRunner, dsn: str) -> None:
    failed_jobs(dsn, "doubt", 3, "NETWORK")
    result = invoke(runner, "jobs", "retry", "--status", "failed", stdin="n\n")
    assert result.exit_code == 1
    assert "Retry 3 jobs? [y/N]" in result.stderr and "aborted" in result.stderr
    assert result.stdout == ""
    assert statuses(dsn) == {"failed": 3}
    # No answer at all (end of input) is a no too.
    result = invoke(runner, "jobs", "retry", "--status", "failed")
    assert result.exit_code == 1 and statuses(dsn) == {"failed": 3}
    # "y" does it; --json prints the count for scripts, the question goes to stderr.
    result = invoke(runner, "jobs", "retry", "--status", "failed", "--json", stdin="y\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"action": "retry", "acted": 3, "running": 0}
    assert statuses(dsn) == {"queued": 3}


def test_bulk_cancel_counts_running_jobs(runner: CliRunner, dsn: str) -> None:
    async def make(store: Store) -> None:
        await store.enqueue_many([NewJob("doubt", group_key="s1") for _ in range(5)])
        await store.enqueue_many([NewJob("doubt", group_key="s2") for _ in range(2)])
        assert len(await store.claim("w-test", {"doubt": "svc"}, 2, 60)) == 2

    in_db(dsn, make)
    data = ok_json(runner, "jobs", "cancel", "--type", "doubt", "--group", "s1", "--yes")
    assert data["action"] == "cancel" and data["acted"] == 5
    running = data["running"]
    assert 0 <= running <= 2
    result = invoke(runner, "jobs", "cancel", "--group", "s2", "--yes")
    assert result.exit_code == 0
    assert result.stdout.strip() == (
        f"cancelled 2 jobs ({2 - running} running: their workers were asked to stop)"
        if running < 2
        else "cancelled 2 jobs"
    )


def test_bulk_without_filter_or_with_a_job_id_is_refused(runner: CliRunner, dsn: str) -> None:
    (job_id,) = failed_jobs(dsn, "doubt", 1, "UNKNOWN")
    for action in ("retry", "cancel"):
        assert_usage_error(runner.invoke(cli, ["jobs", action, "--yes"]), "--all")
        assert_usage_error(
            runner.invoke(cli, ["jobs", action, job_id, "--type", "doubt"]), "not both"
        )
    assert_usage_error(
        runner.invoke(cli, ["jobs", "retry", "--since", "yesterday", "--yes"]), "--since"
    )
    assert_usage_error(
        runner.invoke(cli, ["jobs", "retry", "--until", "2026-01-01T00:00:00", "--yes"]),
        "--until: needs a time zone",
    )
    assert statuses(dsn) == {"failed": 1}
    # --all is the explicit "every job".
    assert ok_json(runner, "jobs", "retry", "--all", "--yes")["acted"] == 1


def test_bulk_retry_by_time_range(runner: CliRunner, dsn: str) -> None:
    failed_jobs(dsn, "doubt", 2, "UNKNOWN")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    earlier = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    result = invoke(runner, "jobs", "retry", "--since", later, "--yes")
    assert result.exit_code == 0 and result.stdout.strip() == "retried 0 jobs"
    result = invoke(runner, "jobs", "retry", "--since", earlier, "--until", later, "--yes")
    assert result.exit_code == 0 and result.stdout.strip() == "retried 2 jobs"


# -- vq workers -------------------------------------------------------------------------


def test_workers_live_and_stale(runner: CliRunner, dsn: str) -> None:
    async def make(store: Store) -> None:
        await store.register_worker("w-live", "host-a", 11, 4, ["doubt"], 30)
        await store.register_worker("w-dead", "host-b", 22, 8, ["doubt"], 30)
        await store.register_worker("w-leaving", "host-c", 33, 2, ["doubt"], 30)
        assert await store.heartbeat("w-live", 2)
        assert await store.heartbeat("w-dead", 7)
        assert await store.heartbeat("w-leaving", 1, "stopping")
        await store.pool.execute(
            "UPDATE vq.workers SET last_heartbeat = now() - interval '10 minutes'"
            " WHERE id = 'w-dead'"
        )

    in_db(dsn, make)
    result = invoke(runner, "workers")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert rows["w-live"].split()[1:3] == ["live", "2/4"]
    assert rows["w-leaving"].split()[1:3] == ["stopping", "1/2"]
    dead = rows["w-dead"].split()
    assert dead[1:3] == ["stale", "-"] and "10m ago" in rows["w-dead"]
    assert "running" not in rows["w-dead"] and "7" not in dead[2]
    assert "stale: no heartbeat within its lease" in result.stdout

    by_id = {w["id"]: w for w in ok_json(runner, "workers")["workers"]}
    assert by_id["w-dead"]["state"] == "stale" and by_id["w-dead"]["jobs_in_flight"] is None
    assert by_id["w-dead"]["heartbeat_age_s"] >= 590
    assert by_id["w-live"]["state"] == "live" and by_id["w-live"]["jobs_in_flight"] == 2
    assert by_id["w-leaving"]["state"] == "stopping"


# -- vq submit --group-key, vq stats ----------------------------------------------------


def test_submit_group_key_is_stored(runner: CliRunner) -> None:
    job_id = ok_json(runner, "submit", "doubt", "--group-key", "student-7")["id"]
    ok_json(runner, "submit", "doubt", "--group-key", "student-8")
    assert ok_json(runner, "jobs", "show", job_id)["group_key"] == "student-7"
    listed = ok_json(runner, "jobs", "list", "--group", "student-7")["jobs"]
    assert [j["id"] for j in listed] == [job_id]
    assert_usage_error(runner.invoke(cli, ["submit", "doubt", "--group-key", ""]), "group_key")


def test_stats_names_a_type_routed_to_a_missing_service(runner: CliRunner, dsn: str) -> None:
    in_db(dsn, lambda s: s.record_service_health("orchestrator", True, None, ["doubt", "topic"]))
    assert invoke(runner, "submit", "doubt").exit_code == 0
    assert invoke(runner, "submit", "topic").exit_code == 0
    assert invoke(runner, "submit", "topic", "--run-at", "2999-01-01T00:00:00Z").exit_code == 0
    result = invoke(runner, "stats")
    assert result.exit_code == 0
    assert "\ndoubt:" not in result.stdout  # routed to a healthy service: no warning
    assert "depth: 2 ready, 1 scheduled (next 2999-01-01" in result.stdout

    assert invoke(runner, "types", "set", "doubt", "--service", "manim").exit_code == 0
    result = invoke(runner, "stats")
    assert "\ndoubt: routed to manim, which no worker has: its jobs wait" in result.stdout
    data = ok_json(runner, "stats")
    assert data["types"] == [
        {
            "job_type": "doubt",
            "state": "service missing",
            "problem": "routed to manim, which no worker has: its jobs wait",
            "service": "manim",
        }
    ]
    assert data["scheduled"] == 1
