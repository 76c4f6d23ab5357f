"""The alert rules as the pure functions they are: a snapshot in, the findings out.

Each rule is checked at its threshold (equal does not fire, one past it does) and
for the exact key, summary and details an operator and a webhook receiver see.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from vq_core.alerts.rules import (
    RULES,
    Finding,
    failure_rate,
    oldest_queued,
    queue_depth,
    service_unhealthy,
    worker_failures,
    worker_stale,
)
from vq_core.config import AlertSettings
from vq_core.models import QueueConfig, WorkerInfo
from vq_core.store.alerts import OutcomeReading, QueueReading, QueueSnapshot

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
CFG = AlertSettings()


def snap(**parts: Any) -> QueueSnapshot:
    return QueueSnapshot(now=NOW, **parts)


def worker(
    worker_id: str = "w1",
    *,
    stale: bool = False,
    consecutive_failures: int = 0,
    silent_s: float = 1.0,
) -> WorkerInfo:
    return WorkerInfo(
        id=worker_id,
        hostname="render-1",
        pid=4242,
        concurrency=4,
        job_types=["doubt"],
        status="running",
        started_at=NOW - timedelta(hours=1),
        last_heartbeat=NOW - timedelta(seconds=silent_s),
        lease_seconds=30.0,
        jobs_in_flight=2,
        jobs_completed=17,
        jobs_failed=5,
        consecutive_failures=consecutive_failures,
        stale=stale,
    )


def service(
    name: str, healthy: bool, detail: str | None = None, job_types: list[str] | None = None
) -> dict[str, Any]:
    return {
        "service": name,
        "healthy": healthy,
        "detail": detail,
        "job_types": job_types,
        "checked_at": NOW - timedelta(seconds=5),
        "changed_at": NOW - timedelta(minutes=10),
    }


def test_every_rule_is_registered_under_its_name() -> None:
    assert {
        "queue_depth": queue_depth,
        "oldest_queued": oldest_queued,
        "worker_failures": worker_failures,
        "worker_stale": worker_stale,
        "service_unhealthy": service_unhealthy,
        "failure_rate": failure_rate,
    } == RULES


def test_a_quiet_queue_finds_nothing() -> None:
    empty = snap()
    assert [f for rule in RULES.values() for f in rule(empty, CFG)] == []


# -- queue_depth --------------------------------------------------------------------


def test_queue_depth_fires_above_the_threshold_only() -> None:
    at = snap(queues=[QueueReading("doubt", ready=20, queued=25, oldest_wait_s=3.0)])
    assert list(queue_depth(at, CFG)) == []
    above = snap(queues=[QueueReading("doubt", ready=21, queued=30, oldest_wait_s=3.0)])
    assert list(queue_depth(above, CFG)) == [
        Finding(
            "queue_depth:doubt",
            "queue_depth",
            "21 doubt jobs ready in the queue (threshold 20)",
            {"job_type": "doubt", "ready": 21, "queued": 30, "threshold": 20, "paused": False},
        )
    ]


def test_queue_depth_counts_ready_jobs_not_scheduled_ones() -> None:
    scheduled = snap(queues=[QueueReading("doubt", ready=3, queued=500, oldest_wait_s=1.0)])
    assert list(queue_depth(scheduled, CFG)) == []


def test_queue_depth_per_type_threshold_wins_over_the_default() -> None:
    cfg = AlertSettings(queue_depth=5, depth_thresholds={"manim": 2, "doubt": 50})
    readings = [
        QueueReading("manim", ready=3, queued=3, oldest_wait_s=1.0),
        QueueReading("doubt", ready=40, queued=40, oldest_wait_s=1.0),
        QueueReading("other", ready=6, queued=6, oldest_wait_s=1.0),
    ]
    found = list(queue_depth(snap(queues=readings), cfg))
    assert [(f.key, f.details["threshold"]) for f in found] == [
        ("queue_depth:manim", 2),
        ("queue_depth:other", 5),
    ]


def test_queue_depth_of_a_zero_threshold_fires_on_one_job() -> None:
    cfg = AlertSettings(queue_depth=0)
    one = snap(queues=[QueueReading("doubt", ready=1, queued=1, oldest_wait_s=0.5)])
    assert [f.key for f in queue_depth(one, cfg)] == ["queue_depth:doubt"]
    none = snap(queues=[QueueReading("doubt", ready=0, queued=1, oldest_wait_s=None)])
    assert list(queue_depth(none, cfg)) == []


def test_queue_depth_says_when_the_type_is_paused() -> None:
    readings = [
        QueueReading("doubt", ready=21, queued=21, oldest_wait_s=9.0),
        QueueReading("manim", ready=22, queued=22, oldest_wait_s=9.0),
    ]
    config = {
        "doubt": QueueConfig("doubt", paused=True),
        "manim": QueueConfig("manim", paused=False),
    }
    found = list(queue_depth(snap(queues=readings, queue_config=config), CFG))
    assert found == [
        Finding(
            "queue_depth:doubt",
            "queue_depth",
            "21 doubt jobs ready in the queue (threshold 20); this type is paused",
            {"job_type": "doubt", "ready": 21, "queued": 21, "threshold": 20, "paused": True},
        ),
        Finding(
            "queue_depth:manim",
            "queue_depth",
            "22 manim jobs ready in the queue (threshold 20)",
            {"job_type": "manim", "ready": 22, "queued": 22, "threshold": 20, "paused": False},
        ),
    ]


# -- oldest_queued ------------------------------------------------------------------


def test_oldest_queued_fires_past_the_limit_only() -> None:
    cfg = AlertSettings(oldest_queued_s=600.0)
    readings = [
        QueueReading("young", ready=1, queued=1, oldest_wait_s=599.0),
        QueueReading("at", ready=1, queued=1, oldest_wait_s=600.0),
        QueueReading("old", ready=2, queued=4, oldest_wait_s=1234.56),
        QueueReading("later", ready=0, queued=3, oldest_wait_s=None),  # all scheduled
    ]
    assert list(oldest_queued(snap(queues=readings), cfg)) == [
        Finding(
            "oldest_queued:old",
            "oldest_queued",
            "the oldest ready old job has waited 1235s (limit 600s)",
            {"job_type": "old", "oldest_wait_s": 1234.6, "limit_s": 600.0, "ready": 2},
        )
    ]


def test_oldest_queued_default_limit_is_fifteen_minutes() -> None:
    readings = [
        QueueReading("a", ready=1, queued=1, oldest_wait_s=900.0),
        QueueReading("b", ready=1, queued=1, oldest_wait_s=901.0),
    ]
    found = list(oldest_queued(snap(queues=readings), CFG))
    assert [f.key for f in found] == ["oldest_queued:b"]
    assert found[0].summary == "the oldest ready b job has waited 901s (limit 900s)"


# -- worker_failures ----------------------------------------------------------------


def test_worker_failures_fire_at_the_threshold() -> None:
    workers = [
        worker("w1", consecutive_failures=2),
        worker("w2", consecutive_failures=3),
        worker("w3", consecutive_failures=7),
    ]
    found = list(worker_failures(snap(workers=workers), CFG))
    assert [f.key for f in found] == ["worker_failures:w2", "worker_failures:w3"]
    assert found[0] == Finding(
        "worker_failures:w2",
        "worker_failures",
        "worker w2 failed 3 jobs in a row (threshold 3)",
        {
            "worker_id": "w2",
            "hostname": "render-1",
            "pid": 4242,
            "consecutive_failures": 3,
            "threshold": 3,
            "jobs_failed": 5,
            "jobs_completed": 17,
        },
    )


def test_worker_failures_threshold_is_a_setting() -> None:
    cfg = AlertSettings(worker_failures=1)
    found = list(worker_failures(snap(workers=[worker(consecutive_failures=1)]), cfg))
    assert [f.summary for f in found] == ["worker w1 failed 1 jobs in a row (threshold 1)"]
    assert list(worker_failures(snap(workers=[worker(consecutive_failures=0)]), cfg)) == []


# -- worker_stale -------------------------------------------------------------------


def test_worker_stale_reports_only_stale_workers() -> None:
    workers = [worker("alive", silent_s=2.0), worker("gone", stale=True, silent_s=95.25)]
    assert list(worker_stale(snap(workers=workers), CFG)) == [
        Finding(
            "worker_stale:gone",
            "worker_stale",
            "worker gone on render-1 sent no heartbeat for 95s (lease 30s)",
            {
                "worker_id": "gone",
                "hostname": "render-1",
                "pid": 4242,
                "last_heartbeat": (NOW - timedelta(seconds=95.25)).isoformat(),
                "silent_s": 95.2,
                "lease_seconds": 30.0,
                "jobs_in_flight": 2,
            },
        )
    ]


# -- service_unhealthy --------------------------------------------------------------


def test_service_unhealthy_names_the_detail_and_the_waiting_types() -> None:
    services = [
        service("fine", True, None, ["x"]),
        service("orchestrator", False, "HTTP 503", ["doubt", "quiz"]),
    ]
    assert list(service_unhealthy(snap(services=services), CFG)) == [
        Finding(
            "service_unhealthy:orchestrator",
            "service_unhealthy",
            "video service orchestrator fails its health check (HTTP 503); "
            "doubt, quiz jobs wait in the queue",
            {
                "service": "orchestrator",
                "detail": "HTTP 503",
                "job_types": ["doubt", "quiz"],
                "checked_at": (NOW - timedelta(seconds=5)).isoformat(),
                "down_since": (NOW - timedelta(minutes=10)).isoformat(),
            },
        )
    ]


def test_service_unhealthy_without_detail_or_types() -> None:
    bare = {
        "service": "manim",
        "healthy": False,
        "checked_at": NOW,
        "changed_at": NOW - timedelta(seconds=30),
    }
    (found,) = service_unhealthy(snap(services=[bare, service("up", True)]), CFG)
    assert found.summary == "video service manim fails its health check"
    assert found.details == {
        "service": "manim",
        "detail": None,
        "job_types": [],
        "checked_at": NOW.isoformat(),
        "down_since": (NOW - timedelta(seconds=30)).isoformat(),
    }


def test_service_unhealthy_with_an_empty_detail_or_no_types() -> None:
    found = list(service_unhealthy(snap(services=[service("x", False, "", [])]), CFG))
    assert [f.summary for f in found] == ["video service x fails its health check"]
    found = list(service_unhealthy(snap(services=[service("y", False, "down", None)]), CFG))
    assert [f.summary for f in found] == ["video service y fails its health check (down)"]
    assert found[0].details["job_types"] == []


# -- failure_rate -------------------------------------------------------------------


def test_failure_rate_fires_above_the_limit_with_enough_jobs() -> None:
    outcomes = [
        OutcomeReading("few", completed=0, failed=9),  # too few to judge
        OutcomeReading("even", completed=5, failed=5),  # exactly the limit
        OutcomeReading("doubt", completed=4, failed=6),
        OutcomeReading("fine", completed=90, failed=10),
    ]
    assert list(failure_rate(snap(outcomes=outcomes), CFG)) == [
        Finding(
            "failure_rate:doubt",
            "failure_rate",
            "6 of 10 doubt jobs failed in the last 15 min (60%, limit 50%)",
            {
                "job_type": "doubt",
                "failed": 6,
                "completed": 4,
                "rate": 0.6,
                "limit": 0.5,
                "window_s": 900.0,
            },
        )
    ]


def test_failure_rate_sample_size_window_and_rounding_follow_the_settings() -> None:
    cfg = AlertSettings(failure_min_jobs=3, failure_rate=0.25, failure_window_s=90.0)
    outcomes = [
        OutcomeReading("three", completed=2, failed=1),
        OutcomeReading("two", completed=0, failed=2),
    ]
    (found,) = failure_rate(snap(outcomes=outcomes), cfg)
    assert found.summary == "1 of 3 three jobs failed in the last 1.5 min (33%, limit 25%)"
    assert found.details["rate"] == 0.3333
    assert found.details["window_s"] == 90.0


def test_failure_rate_with_every_job_failed_and_a_zero_limit() -> None:
    cfg = AlertSettings(failure_min_jobs=1, failure_rate=0.0)
    outcomes = [OutcomeReading("a", completed=1, failed=0), OutcomeReading("b", 0, 1)]
    found = list(failure_rate(snap(outcomes=outcomes), cfg))
    assert [(f.key, f.details["rate"]) for f in found] == [("failure_rate:b", 1.0)]
