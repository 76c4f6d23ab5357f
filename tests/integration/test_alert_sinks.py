"""Installation-wide alert sinks (issue 11): stored in the database, delivered by
whichever process evaluates, every attempt recorded; ``vq alerts``; and the worker
failure streak that a student's invalid payload no longer feeds.

Real PostgreSQL, real loopback webhook and SMTP receivers, real workers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support.alert_receivers import HttpReceiver, SmtpReceiver, http_receiver
from support.helpers import ScriptedService, eventually, running_worker

from vq_core.alerts.engine import AlertEngine, collect_sinks, sink_builder
from vq_core.cli.main import cli
from vq_core.config import Settings
from vq_core.errors import InvalidInput, ServiceError
from vq_core.models import Actor, ErrorCategory, JobStatus, NewJob
from vq_core.plugins import make_plugin_manager
from vq_core.sink_config import email_spec, webhook_spec
from vq_core.store import Store
from vq_plugins.alert_sinks.alert_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

SECRET = "s3cr3t-do-not-print-7f3a"
SMTP_PASSWORD = "smtp-pw-never-shown-91c2"
SINK_PLUGINS = (
    "vq_plugins.alert_sinks.alert_log",
    "vq_plugins.alert_sinks.alert_webhook",
    "vq_plugins.alert_sinks.alert_email",
)
ADMIN = Actor("alice", "cli")


def fast_alerts(settings: Settings, **alerts: Any) -> Settings:
    """Quick ticks and retries; the process's own configuration names no sink."""
    update = {"interval": 0.05, "sink_retry_delay": 0.01, "sink_timeout": 2.0, **alerts}
    return settings.model_copy(update={"alerts": settings.alerts.model_copy(update=update)})


def engine_for(store: Store, settings: Settings) -> AlertEngine:
    """An engine wired as a worker's is: its own sinks, and the stored ones."""
    pm = make_plugin_manager(settings, SINK_PLUGINS, load_entrypoints=False)
    return AlertEngine(store, settings, collect_sinks(pm, settings), sink_builder(pm, settings))


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    async with http_receiver() as r:
        yield r


@pytest.fixture
def runner(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("VQ_DATABASE_URL", dsn)
    monkeypatch.setenv("VQ_DATA_DIR", str(tmp_path))
    yield CliRunner()


def invoke(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


# -- stored, secrets kept -----------------------------------------------------------


async def test_sinks_are_stored_listed_without_secrets_and_removed(store: Store) -> None:
    hook = await store.add_alert_sink(
        webhook_spec("ops-hook", "http://user:pw@127.0.0.1:9/hook", SECRET), ADMIN
    )
    mail = await store.add_alert_sink(
        email_spec(
            "oncall",
            to="ops@example.org, lead@example.org",
            host="127.0.0.1",
            sender="vq@example.org",
            port=2525,
            username="vq",
            password=SMTP_PASSWORD,
        ),
        ADMIN,
    )
    assert hook.has_secret and mail.has_secret and hook.created_by == "alice"
    listed = await store.list_alert_sinks()
    assert [s.name for s in listed] == ["oncall", "ops-hook"]
    shown = json.dumps([s.to_dict() for s in listed]) + repr(listed)
    assert SECRET not in shown and SMTP_PASSWORD not in shown
    assert "user:pw" not in shown and "http://***@127.0.0.1:9/hook" in shown
    assert listed[0].target == "ops@example.org, lead@example.org via 127.0.0.1:2525"
    # Only the delivering side gets the secret, and its repr still leaves it out.
    stored = {s.name: s for s in await store.deliverable_alert_sinks()}
    assert stored["ops-hook"].secret == SECRET and stored["oncall"].secret == SMTP_PASSWORD
    assert SECRET not in repr(stored)

    with pytest.raises(InvalidInput, match="already exists"):
        await store.add_alert_sink(webhook_spec("ops-hook", "http://127.0.0.1:9/other"), ADMIN)
    assert await store.remove_alert_sink("ops-hook")
    assert not await store.remove_alert_sink("ops-hook")
    assert [s.name for s in await store.list_alert_sinks()] == ["oncall"]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: webhook_spec("h", "ftp://127.0.0.1/x"), "url: must start with http"),
        (lambda: webhook_spec("h", "http:///nohost"), "url: the URL has no host"),
        (lambda: webhook_spec("h", "http://127.0.0.1:99999/"), "url: not a URL"),
        (lambda: webhook_spec("bad name", "http://127.0.0.1/"), "name:"),
        (
            lambda: email_spec("m", to="not-an-address", host="127.0.0.1", sender="v@example.org"),
            "to: 'not-an-address' is not an e-mail address",
        ),
        (
            lambda: email_spec("m", to="a@example.org", host="127.0.0.1", sender="vq"),
            "from: 'vq' is not an e-mail address",
        ),
        (
            lambda: email_spec("m", to="a@example.org", host="", sender="v@example.org"),
            "host:",
        ),
    ],
)
def test_bad_urls_and_addresses_are_refused_naming_the_field(build: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(")):
        build()


# -- delivered by whichever process evaluates -----------------------------------------


async def test_a_process_naming_no_sink_delivers_to_the_stored_webhook(
    store: Store, settings: Settings, dsn: str, receiver: HttpReceiver
) -> None:
    cfg = fast_alerts(settings, queue_depth=0, cooldown=3600)
    assert cfg.plugin_settings("webhook") == {}  # this process's settings name no sink
    await store.add_alert_sink(webhook_spec("ops-hook", receiver.url + "/hook", SECRET), ADMIN)
    pm = make_plugin_manager(cfg, SINK_PLUGINS, load_entrypoints=False)
    async with running_worker(store, cfg, {"scripted": ScriptedService()}, dsn, pm) as worker:
        assert [s.name for s in worker.alerts.sinks] == ["log"]
        await store.enqueue(NewJob("doubt"))  # nobody renders doubt: the depth alert fires
        await eventually(lambda: _async(receiver.alert_keys("firing") == ["queue_depth:doubt"]))
    request = receiver.requests[0]
    assert request.path == "/hook"
    assert verify(
        request.body,
        SECRET,
        request.headers.get(TIMESTAMP_HEADER.lower()),
        request.headers.get(SIGNATURE_HEADER.lower()),
    )
    deliveries = await eventually(lambda: _deliveries(store, "ops-hook"))
    assert [(d.alert_key, d.attempt, d.outcome, d.installation_wide) for d in deliveries] == [
        ("queue_depth:doubt", 1, "sent", True)
    ]
    log_rows = await _deliveries(store, "log")
    assert [(d.outcome, d.installation_wide) for d in log_rows] == [("sent", False)]
    assert log_rows[0].notification == deliveries[0].notification  # one notification


async def test_a_failing_receiver_shows_retried_then_failed_and_others_still_get_it(
    store: Store, settings: Settings, receiver: HttpReceiver
) -> None:
    cfg = fast_alerts(settings, queue_depth=0, sink_attempts=3)
    async with http_receiver(status=503) as failing:
        await store.add_alert_sink(webhook_spec("broken", failing.url), ADMIN)
        await store.add_alert_sink(webhook_spec("working", receiver.url), ADMIN)
        await store.enqueue(NewJob("doubt"))
        sent = await engine_for(store, cfg).tick()
        assert [a.key for a in sent] == ["queue_depth:doubt"]
        assert len(failing.posts) == 3
    assert receiver.alert_keys() == ["queue_depth:doubt"]
    broken = await _deliveries(store, "broken")
    assert [(d.attempt, d.outcome) for d in broken] == [
        (1, "retried"),
        (2, "retried"),
        (3, "failed"),
    ]
    assert all(d.detail == "the receiver answered HTTP 503" for d in broken)
    assert [d.outcome for d in await _deliveries(store, "working")] == ["sent"]

    # A sink added or removed is in or out at the next delivery, with no restart.
    await store.remove_alert_sink("broken")
    (outcome_log, outcome_working) = await engine_for(store, cfg).send_test("bob")
    assert (outcome_log.sink, outcome_working.sink) == ("log", "working")
    assert receiver.alert_keys() == ["queue_depth:doubt", "test"]
    assert [d.sink_id for d in broken] == [broken[0].sink_id] * 3  # kept after removal
    assert {d.sink_id for d in await _deliveries(store, "broken")} == {None}


async def test_a_stored_sink_no_plugin_builds_is_recorded_failed(
    store: Store, settings: Settings
) -> None:
    """A process whose e-mail plugin is disabled cannot deliver a stored e-mail sink: the
    page shows that rather than silence."""
    await store.add_alert_sink(
        email_spec("mail", to="a@example.org", host="127.0.0.1", sender="v@example.org"), ADMIN
    )
    pm = make_plugin_manager(settings, SINK_PLUGINS[:2], load_entrypoints=False)
    engine = AlertEngine(store, settings, [], sink_builder(pm, settings))
    (outcome,) = await engine.send_test("bob")
    assert outcome.outcome == "failed" and "no plugin of this process" in (outcome.detail or "")
    assert [d.outcome for d in await _deliveries(store, "mail")] == ["failed"]


# -- vq alerts ------------------------------------------------------------------------


def test_cli_adds_lists_tests_and_removes_sinks_without_printing_secrets(
    runner: CliRunner, dsn: str
) -> None:
    asyncio.run(_cli_scenario(runner, dsn))


async def _cli_scenario(runner: CliRunner, dsn: str) -> None:
    smtp = SmtpReceiver()
    async with http_receiver() as hook:
        port = await smtp.start()
        try:
            outputs = await asyncio.to_thread(_cli_steps, runner, hook.url, port)
        finally:
            await smtp.close()
        assert hook.alert_keys() == ["test"]
        assert hook.requests[0].headers.get(SIGNATURE_HEADER.lower(), "").startswith("v1=")
    assert len(smtp.messages) == 1
    sender, recipients, message = smtp.messages[0]
    assert (sender, recipients) == ("vq@example.org", ["ops@example.org"])
    assert b"[vq] FIRING test" in message
    for out in outputs:
        assert SECRET not in out and SMTP_PASSWORD not in out


def _cli_steps(runner: CliRunner, hook_url: str, smtp_port: int) -> list[str]:
    outputs = []
    code, out = invoke(
        runner, "alerts", "sinks", "add", "ops-hook", "--kind", "webhook",
        "--url", hook_url, "--secret", SECRET, "--json",
    )  # fmt: skip
    assert code == 0, out
    assert json.loads(out)["has_secret"] is True
    outputs.append(out)
    code, out = invoke(
        runner, "alerts", "sinks", "add", "oncall", "--kind", "email",
        "--to", "ops@example.org", "--smtp-host", "127.0.0.1", "--smtp-port", str(smtp_port),
        "--from", "vq@example.org",
    )  # fmt: skip
    assert code == 0 and "added email sink oncall" in out, out
    outputs.append(out)

    code, out = invoke(runner, "alerts", "sinks", "list")
    assert code == 0 and "ops-hook" in out and "oncall" in out and hook_url in out
    outputs.append(out)
    code, out = invoke(runner, "alerts", "sinks", "list", "--json")
    listed = {s["name"]: s for s in json.loads(out)["sinks"]}
    assert listed["ops-hook"]["has_secret"] and not listed["oncall"]["has_secret"]
    assert "secret" not in listed["ops-hook"]["config"]
    outputs.append(out)

    code, out = invoke(runner, "alerts", "test", "--json")
    assert code == 0, out
    outcomes = {d["sink"]: d for d in json.loads(out)["deliveries"]}
    assert {k: v["outcome"] for k, v in outcomes.items()} == {
        "log": "sent",
        "ops-hook": "sent",
        "oncall": "sent",
    }
    assert outcomes["ops-hook"]["installation_wide"] and not outcomes["log"]["installation_wide"]
    outputs.append(out)

    code, out = invoke(runner, "alerts", "sinks", "remove", "oncall")
    assert code == 0 and "removed alert sink oncall" in out
    code, out = invoke(runner, "alerts", "sinks", "remove", "oncall")
    assert code == 2 and "no alert sink named 'oncall'" in out
    return outputs


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "webhook", "--url", "ftp://127.0.0.1/x"], "url: must start with http"),
        (["--kind", "webhook"], "--url: a webhook sink needs a URL"),
        (["--kind", "webhook", "--url", "http://127.0.0.1/", "--to", "a@example.org"], "--to"),
        (
            ["--kind", "email", "--to", "nobody", "--smtp-host", "127.0.0.1", "--from", "v@e.org"],
            "to: 'nobody' is not an e-mail address",
        ),
        (["--kind", "email", "--smtp-host", "127.0.0.1", "--from", "v@e.org"], "--to"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(
    runner: CliRunner, args: list[str], message: str
) -> None:
    code, out = invoke(runner, "alerts", "sinks", "add", "x", *args)
    assert code == 2 and message in out
    assert len(out.strip().splitlines()) == 1, out
    code, out = invoke(runner, "alerts", "sinks", "list")
    assert "reach only the log" in out


def test_cli_test_fails_with_exit_1_when_a_sink_fails(runner: CliRunner) -> None:
    code, _ = invoke(
        runner, "alerts", "sinks", "add", "dead", "--kind", "webhook",
        "--url", "http://127.0.0.1:9/nothing-listens",
    )  # fmt: skip
    assert code == 0
    result = runner.invoke(cli, ["alerts", "test"], env={"VQ_ALERTS__SINK_ATTEMPTS": "1"})
    assert result.exit_code == 1
    line = next(x for x in result.output.splitlines() if x.startswith("dead"))
    assert "installation" in line and "failed" in line


# -- the worker failure streak --------------------------------------------------------


async def test_invalid_input_does_not_make_a_worker_failing_nor_fire_the_rule(
    store: Store, settings: Settings, dsn: str, receiver: HttpReceiver
) -> None:
    cfg = fast_alerts(settings, cooldown=3600, worker_failures=3)
    await store.add_alert_sink(webhook_spec("ops-hook", receiver.url), ADMIN)
    service = ScriptedService()
    service.raise_for = lambda job: (
        ServiceError(ErrorCategory.INVALID_INPUT, "payload.question: required")
        if job.payload.get("bad")
        else ServiceError(ErrorCategory.API_ERROR, "renderer crashed", permanent=True)
        if job.payload.get("crash")
        else None
    )
    pm = make_plugin_manager(cfg, SINK_PLUGINS, load_entrypoints=False)
    async with running_worker(store, cfg, {"scripted": service}, dsn, pm) as worker:
        bad = await store.enqueue_many([NewJob("scripted", {"bad": True}) for _ in range(5)])
        await eventually(lambda: _all(store, [j.id for j in bad], JobStatus.FAILED))
        (info,) = await store.list_workers()
        assert info.jobs_failed == 5 and info.consecutive_failures == 0
        await worker.alerts.tick()
        assert receiver.alert_keys() == []
        assert not [a for a in await store.list_alerts() if a.rule == "worker_failures"]

        # Worker and service faults still count, and an invalid payload between them
        # neither counts nor resets the streak.
        for payload in ({"crash": True}, {"crash": True}, {"bad": True}, {"crash": True}):
            job = await store.enqueue(NewJob("scripted", payload))
            await eventually(lambda j=job: _all(store, [j.id], JobStatus.FAILED))
        (info,) = await store.list_workers()
        assert info.consecutive_failures == 3 and info.jobs_failed == 9
        key = f"worker_failures:{worker.id}"
        await eventually(lambda: _async(key in receiver.alert_keys("firing")))


async def test_invalid_input_in_the_store_counts_failed_jobs_not_the_streak(
    store: Store,
) -> None:
    await store.register_worker("w1", "host", 1, 4, ["t"], 30.0)
    ids = [r.id for r in await store.enqueue_many([NewJob("t") for _ in range(4)])]
    await store.claim("w1", {"t": "noop"}, 4, 30)
    categories = ["API_ERROR", "INVALID_INPUT", "CANCELLED", "TIMEOUT"]
    for job_id, category in zip(ids, categories, strict=True):
        await store.fail("w1", job_id, {"message": "x", "type": category}, None)
    (info,) = await store.list_workers()
    assert info.jobs_failed == 4 and info.consecutive_failures == 2


# -- helpers --------------------------------------------------------------------------


async def _async(value: bool) -> bool:
    return value


async def _deliveries(store: Store, sink: str) -> list[Any]:
    rows = [d for d in await store.list_alert_deliveries() if d.sink == sink]
    return sorted(rows, key=lambda d: d.id)


async def _all(store: Store, ids: list[Any], status: JobStatus) -> bool:
    return all([(await store.get_job(i)).status is status for i in ids])
