"""vq_core.queue_types and the settings patch, without a database: what the page, the
CLI and the API say about each job type, and which changes they accept."""

from __future__ import annotations

from typing import Any

import pytest

from vq_core.errors import InvalidInput
from vq_core.models import QueueConfig
from vq_core.queue_types import describe_types
from vq_core.validation import queue_config_patch

DEFAULTS = QueueConfig("", max_retries=3, timeout_s=600)


def health(service: str, healthy: bool = True, *types: str, detail: str | None = None) -> Any:
    return {"service": service, "healthy": healthy, "detail": detail, "job_types": list(types)}


def states(**kwargs: Any) -> dict[str, Any]:
    args = {"configs": {}, "counts": {}, "health": [], "service_limits": {}, "defaults": DEFAULTS}
    args.update(kwargs)
    return {t.job_type: t for t in describe_types(**args)}


def test_a_type_routed_by_a_healthy_service_is_active() -> None:
    got = states(health=[health("local", True, "doubt")], counts={"doubt": {"ready": 2}})
    doubt = got["doubt"]
    assert (doubt.state, doubt.service, doubt.problem) == ("active", "local", None)
    assert doubt.counts["ready"] == 2 and doubt.counts["running"] == 0
    assert doubt.configured is False and doubt.config.timeout_s == 600


def test_a_type_routed_to_a_service_no_worker_has_says_so() -> None:
    got = states(
        configs={"doubt": QueueConfig("doubt", service="manim")},
        health=[health("local", True, "doubt")],
    )
    assert got["doubt"].state == "service missing"
    assert got["doubt"].problem == "routed to manim, which no worker has: its jobs wait"


def test_a_type_routed_to_an_unhealthy_service_says_why() -> None:
    got = states(health=[health("manim", False, "diagram", detail="connection refused")])
    assert got["diagram"].state == "service unhealthy"
    assert "connection refused" in (got["diagram"].problem or "")


def test_a_type_with_jobs_and_no_service_is_unrouted() -> None:
    got = states(counts={"mystery": {"ready": 5}})
    assert got["mystery"].state == "unrouted" and got["mystery"].service is None


def test_paused_wins_over_a_problem_but_keeps_it_visible() -> None:
    got = states(configs={"doubt": QueueConfig("doubt", service="manim", paused=True)})
    assert got["doubt"].state == "paused"
    assert got["doubt"].problem is not None


def test_a_service_cap_is_shown_on_its_types() -> None:
    got = states(health=[health("local", True, "doubt")], service_limits={"local": 4})
    assert got["doubt"].service_max_running == 4
    assert got["doubt"].to_dict()["service_max_running"] == 4


def test_the_patch_keeps_only_what_it_names_and_null_clears_a_cap() -> None:
    patch = queue_config_patch({"max_running": None, "paused": True})
    assert patch.changes() == {"max_running": None, "paused": True}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"timeout_s": float("nan")}, "timeout_s"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"max_running": 0}, "max_running"),
        ({"max_running_per_group": -1}, "max_running_per_group"),
        ({"concurrency": "4"}, "concurrency"),
        ({"paused": None}, "paused"),
        ({"paused": "yes"}, "paused"),
        ({"service": "a\x00b"}, "service"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_the_patch_refuses_bad_values_naming_the_field(values: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput, match=field):
        queue_config_patch(values)
