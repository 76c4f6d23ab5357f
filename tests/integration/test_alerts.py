"""The alert engine over a real database and a real loopback webhook receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.alert_receivers import HttpReceiver, http_receiver
from support.helpers import eventually

from vq_core import db
from vq_core.alerts.engine import AlertEngine, decide, evaluate
from vq_core.alerts.model import Alert
from vq_core.config import Settings
from vq_core.errors import ServiceError
from vq_core.models import ErrorCategory, NewJob
from vq_core.store import Store
from vq_core.store.alerts import AlertRecord, QueueSnapshot
from vq_plugins.alert_sinks.alert_webhook import WebhookSink


def with_alerts(settings: Settings, **alerts: Any) -> Settings:
    """``settings`` with some alert settings changed."""
    return settings.model_copy(update={"alerts": settings.alerts.model_copy(update=alerts)})


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    async with http_receiver() as r:
        yield r


async def test_depth_fires_once_repeats_after_cooldown_resolves_when_it_falls(
    store: Store, settings: Settings, receiver: HttpReceiver
) -> None:
    sink = WebhookSink(receiver.url)
    engine = AlertEngine(store, with_alerts(settings, cooldown=3600), [sink])
    jobs = await store.enqueue_many([NewJob("doubt") for _ in range(20)])
    assert await engine.tick() == []  # 20 is not above the threshold of 20

    jobs.append(await store.enqueue(NewJob("doubt")))
    sent = await engine.tick()
    assert [(a.key, a.state) for a in sent] == [("queue_depth:doubt", "firing")]
    for _ in range(3):
        assert await engine.tick() == []  # still firing, within the cool-down
    assert len(receiver.posts) == 1
    first = receiver.posts[0]
    assert first["state"] == "firing" and first["rule"] == "queue_depth"
    assert first["details"]["ready"] == 21 and first["details"]["threshold"] == 20
    assert first["text"].startswith("[vq] FIRING queue_depth:doubt") and not first["repeat"]

    # The state is in the database: another engine with a short cool-down repeats it.
    short = AlertEngine(store, with_alerts(settings, cooldown=0.2), [sink])
    repeat = await eventually(short.tick, timeout=10)
    assert [(a.key, a.state, a.send_count) for a in repeat] == [("queue_depth:doubt", "firing", 2)]
    assert receiver.posts[1]["repeat"] is True
    assert receiver.posts[1]["first_seen"] == first["first_seen"]

    await store.cancel(jobs[0].id)
    resolved = await short.tick()
    assert [(a.key, a.state) for a in resolved] == [("queue_depth:doubt", "resolved")]
    assert [p["state"] for p in receiver.posts] == ["firing", "firing", "resolved"]
    assert receiver.posts[2]["text"].startswith("[vq] RESOLVED queue_depth:doubt")
    assert await short.tick() == [] and len(receiver.posts) == 3

    (row,) = await store.list_alerts()
    assert row.state == "resolved" and row.resolved_at is not None and row.send_count == 3


async def test_per_type_threshold_overrides_the_default(
    store: Store, settings: Settings, receiver: HttpReceiver
) -> None:
    cfg = with_alerts(settings, depth_thresholds={"manim": 2})
    engine = AlertEngine(store, cfg, [WebhookSink(receiver.url)])
    await store.enqueue_many([NewJob("manim") for _ in range(3)] + [NewJob("doubt")] * 3)
    sent = await engine.tick()
    assert [a.key for a in sent] == ["queue_depth:manim"]
    assert receiver.posts[0]["details"]["threshold"] == 2


async def test_several_engines_send_each_alert_once(
    dsn: str, store: Store, settings: Settings, receiver: HttpReceiver
) -> None:
    await store.enqueue_many([NewJob("doubt") for _ in range(25)])
    await store.register_worker("ghost-1", "host-a", 11, 1, ["doubt"], 0.01)
    await eventually(lambda: _stale(store, "ghost-1"))
    pools = [await db.create_pool(dsn, 1, 2) for _ in range(6)]
    try:
        engines = [AlertEngine(Store(p), settings, [WebhookSink(receiver.url)]) for p in pools]
        sent_per_round = []
        for _ in range(4):
            results = await asyncio.gather(*(e.tick() for e in engines))
            sent_per_round.append(sorted(a.key for r in results for a in r))
    finally:
        for p in pools:
            await p.close()
    expected = ["queue_depth:doubt", "worker_stale:ghost-1"]
    assert sent_per_round == [expected, [], [], []]
    assert sorted(receiver.alert_keys()) == expected


async def _stale(store: Store, worker_id: str) -> bool:
    return any(w.id == worker_id and w.stale for w in await store.list_workers())


async def test_worker_without_goodbye_is_reported_stale_until_it_beats_again(
    store: Store, settings: Settings, receiver: HttpReceiver
) -> None:
    engine = AlertEngine(store, settings, [WebhookSink(receiver.url)])
    # A worker that registered and then vanished: no heartbeat, no deregistration.
    await store.register_worker("vanished", "host-b", 4242, 4, ["doubt"], 0.3)
    assert await engine.tick() == []  # within its lease it is not stale yet
    sent = await eventually(engine.tick)
    assert [a.key for a in sent] == ["worker_stale:vanished"]
    details = receiver.posts[0]["details"]
    assert details["hostname"] == "host-b" and details["silent_s"] >= 0.3
    assert "vanished" in receiver.posts[0]["summary"]

    assert await store.heartbeat("vanished", 0)
    resolved = await engine.tick()
    assert [(a.key, a.state) for a in resolved] == [("worker_stale:vanished", "resolved")]


async def test_three_failures_in_a_row_fire_and_a_success_resolves(
    store: Store, settings: Settings, receiver: HttpReceiver
) -> None:
    engine = AlertEngine(store, settings, [WebhookSink(receiver.url)])
    await store.register_worker("w1", "host", 1, 4, ["doubt"], 30)
    error = {"message": "boom", "type": "API_ERROR", "retryable": True}
    for n in range(3):
        job = await store.enqueue(NewJob("doubt"))
        (claimed,) = await store.claim("w1", {"doubt": "noop"}, 1, 30)
        assert claimed.id == job.id
        await store.fail("w1", job.id, error, None)
        sent = await engine.tick()
        assert [a.key for a in sent] == ([] if n < 2 else ["worker_failures:w1"])
    assert receiver.posts[0]["details"]["consecutive_failures"] == 3

    job = await store.enqueue(NewJob("doubt"))
    await store.claim("w1", {"doubt": "noop"}, 1, 30)
    assert await store.complete_many("w1", [(job.id, {"ok": True})]) == [job.id]
    assert [(a.key, a.state) for a in await engine.tick()] == [("worker_failures:w1", "resolved")]


async def test_oldest_queued_and_failure_rate(
    store: Store, settings: Settings, receiver: HttpReceiver
) -> None:
    cfg = with_alerts(settings, oldest_queued_s=600, failure_min_jobs=4, failure_rate=0.5)
    engine = AlertEngine(store, cfg, [WebhookSink(receiver.url)])
    await store.register_worker("w2", "host", 1, 4, ["render"], 30)
    jobs = await store.enqueue_many([NewJob("render") for _ in range(4)])
    claimed = await store.claim("w2", {"render": "noop"}, 4, 30)
    assert len(claimed) == 4
    error = {"message": "bad", "type": "INVALID_INPUT", "retryable": False}
    for job in jobs[:3]:
        await store.fail("w2", job.id, error, None)
    await store.complete_many("w2", [(jobs[3].id, {})])
    # Twenty minutes in the queue, against a limit of ten; "fresh" has just arrived.
    old = await store.enqueue(NewJob("waiting"))
    await store.pool.execute(
        "UPDATE vq.jobs SET created_at = now() - interval '20 minutes',"
        " run_at = now() - interval '20 minutes' WHERE id = $1",
        old.id,
    )
    await store.enqueue(NewJob("fresh"))
    sent = await engine.tick()
    assert sorted(a.key for a in sent) == ["failure_rate:render", "oldest_queued:waiting"]
    waited = next(p for p in receiver.posts if p["key"] == "oldest_queued:waiting")
    assert 1200 <= waited["details"]["oldest_wait_s"] < 1260
    assert waited["details"]["limit_s"] == 600 and waited["details"]["ready"] == 1
    assert "failure_rate:render" in receiver.alert_keys("firing")
    rate = next(p for p in receiver.posts if p["key"] == "failure_rate:render")
    assert rate["details"]["failed"] == 3 and rate["details"]["completed"] == 1
    # The success after the failures reset the worker's streak.
    assert "worker_failures:w2" not in receiver.alert_keys()


async def test_a_scheduled_job_is_not_waiting(
    store: Store, settings: Settings, receiver: HttpReceiver
) -> None:
    cfg = with_alerts(settings, oldest_queued_s=0.1, queue_depth=0)
    engine = AlertEngine(store, cfg, [WebhookSink(receiver.url)])
    later = datetime.now(UTC) + timedelta(hours=1)
    await store.enqueue(NewJob("later", run_at=later))
    assert await engine.tick() == []  # not ready: neither deep nor waiting


async def test_unhealthy_service_fires_and_recovery_resolves(
    store: Store, settings: Settings, receiver: HttpReceiver
) -> None:
    engine = AlertEngine(store, settings, [WebhookSink(receiver.url)])
    await store.record_service_health("orchestrator", False, "HTTP 503", ["doubt"])
    sent = await engine.tick()
    assert [a.key for a in sent] == ["service_unhealthy:orchestrator"]
    assert "HTTP 503" in sent[0].summary and "doubt" in sent[0].summary
    await store.record_service_health("orchestrator", True, None, ["doubt"])
    assert [a.state for a in await engine.tick()] == ["resolved"]


class HangingSink:
    """A sink that never answers."""

    name = "hanging"

    def __init__(self) -> None:
        self.calls = 0

    async def send(self, alert: Alert) -> None:
        self.calls += 1
        await asyncio.Event().wait()


class FlakySink:
    """Fails the first ``failures`` attempts, then records."""

    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[Alert] = []

    async def send(self, alert: Alert) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ServiceError(ErrorCategory.NETWORK, "connection refused")
        self.received.append(alert)


async def test_timeouts_and_failures_are_retried_logged_and_isolated(
    store: Store, settings: Settings, receiver: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = with_alerts(
        settings, queue_depth=0, sink_timeout=0.2, sink_attempts=3, sink_retry_delay=0.01
    )
    hanging, flaky, broken = HangingSink(), FlakySink(2), FlakySink(99)
    engine = AlertEngine(store, cfg, [hanging, flaky, broken, WebhookSink(receiver.url)])
    await store.enqueue(NewJob("doubt"))
    sent = await engine.tick()
    assert [a.key for a in sent] == ["queue_depth:doubt"]
    assert hanging.calls == 3  # each attempt timed out, then it gave up
    assert [a.key for a in flaky.received] == ["queue_depth:doubt"]  # third attempt worked
    assert broken.received == [] and receiver.alert_keys() == ["queue_depth:doubt"]
    messages = [r.getMessage() for r in caplog.records if r.name == "vq.alerts"]
    assert any("hanging: gave up" in m and "timed out" in m for m in messages)
    assert any("flaky: gave up" in m for m in messages)


async def test_webhook_errors_are_retried(store: Store, settings: Settings) -> None:
    async with http_receiver(status=500) as failing:
        cfg = with_alerts(settings, queue_depth=0, sink_attempts=2, sink_retry_delay=0.01)
        engine = AlertEngine(store, cfg, [WebhookSink(failing.url)])
        await store.enqueue(NewJob("doubt"))
        await engine.tick()
        assert failing.alert_keys() == ["queue_depth:doubt"] * 2


async def test_a_crashing_rule_keeps_its_alerts_unchanged(settings: Settings) -> None:
    def broken(snap: QueueSnapshot, cfg: Any) -> Any:
        raise RuntimeError("bug")

    snap = QueueSnapshot(now=datetime.now(UTC))
    findings, crashed = evaluate(snap, settings.alerts, {"queue_depth": broken})
    assert findings == [] and crashed == {"queue_depth"}
    firing = AlertRecord(
        "queue_depth:x", "queue_depth", "firing", "s", {}, snap.now, snap.now, snap.now
    )
    writes, send = decide({firing.key: firing}, [], snap.now, 60, crashed)
    assert writes == [] and send == []
    writes, send = decide({firing.key: firing}, [], snap.now, 60)
    assert [r.state for r in send] == ["resolved"]


async def test_disabled_engine_does_nothing(store: Store, settings: Settings) -> None:
    engine = AlertEngine(store, with_alerts(settings, enabled=False, queue_depth=0), [])
    await store.enqueue(NewJob("doubt"))
    assert await engine.tick() == []
    assert await store.list_alerts() == []


async def test_list_alerts_puts_firing_first(store: Store, settings: Settings) -> None:
    engine = AlertEngine(store, with_alerts(settings, queue_depth=0), [])
    a = await store.enqueue(NewJob("a-type"))
    await store.enqueue(NewJob("b-type"))
    await engine.tick()
    await store.cancel(a.id)
    await engine.tick()
    rows = await store.list_alerts()
    assert [(r.key, r.state) for r in rows] == [
        ("queue_depth:b-type", "firing"),
        ("queue_depth:a-type", "resolved"),
    ]
    assert [r.key for r in await store.list_alerts(firing_only=True)] == ["queue_depth:b-type"]
    assert rows[0].to_dict()["first_seen"].endswith("+00:00")
