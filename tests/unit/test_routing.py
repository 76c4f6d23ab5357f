"""The router on its own: which service renders which type, and when a service may be used.

Routing, most specific first: ``job_queue_config.service``, then the ``services``
setting, then the types a service declares. The circuit breaker opens after
``breaker_threshold`` failures in a row that point at the service, and closes after
``breaker_cooldown`` seconds or a passing health check. Time is a clock the test moves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from vq_core.models import ClaimedJob, ErrorCategory, QueueConfig
from vq_core.video_service import ProgressCallback
from vq_core.worker import routing
from vq_core.worker.routing import SERVICE_TROUBLE, Router


class Service:
    """A service that declares job types; these tests never render."""

    def __init__(self, name: str, job_types: Sequence[str] = ()) -> None:
        self.name = name
        self.job_types = tuple(job_types)

    async def render(self, job: ClaimedJob, progress: ProgressCallback) -> dict[str, Any]:
        raise AssertionError("routing tests do not render")

    async def health(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


class Clock:
    """``time.monotonic`` for the router, moved by the test (it starts at zero)."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(routing, "time", clock)
    return clock


def router(*services: Service, overrides: dict[str, str] | None = None, **kw: Any) -> Router:
    return Router({s.name: s for s in services}, overrides or {}, **kw)


def fail(r: Router, service: str, times: int, category: ErrorCategory) -> list[bool]:
    return [r.record_outcome(service, category) for _ in range(times)]


# -- routing order ------------------------------------------------------------------


def test_a_type_goes_to_the_service_that_declares_it() -> None:
    r = router(Service("orchestrator", ["doubt"]), Service("manim", ["manim", "revideo"]))
    assert r.routes() == {"doubt": "orchestrator", "manim": "manim", "revideo": "manim"}
    assert r.service_for("manim") is r.services["manim"]
    assert r.service_for("nobody-renders-this") is None


def test_the_first_service_to_declare_a_type_keeps_it() -> None:
    r = router(Service("first", ["shared", "a"]), Service("second", ["shared", "b"]))
    assert r.routes() == {"shared": "first", "a": "first", "b": "second"}


def test_routing_order_queue_config_then_services_setting_then_declared_types() -> None:
    one, two, three = Service("one", ["x", "y", "z"]), Service("two"), Service("three")
    # Declared only: everything goes to "one".
    r = router(one, two, three)
    assert r.routes() == {"x": "one", "y": "one", "z": "one"}
    # The services setting beats the declaration, and may route a type nobody declares.
    r = router(one, two, three, overrides={"y": "two", "z": "two", "w": "two"})
    assert r.routes() == {"x": "one", "y": "two", "z": "two", "w": "two"}
    # job_queue_config.service beats both; a row without a service changes nothing.
    r.queue_config = {
        "z": QueueConfig("z", service="three"),
        "x": QueueConfig("x", service=None),
        "v": QueueConfig("v", service="three"),
    }
    assert r.routes() == {"x": "one", "y": "two", "z": "three", "w": "two", "v": "three"}
    assert r.service_for("z") is three and r.service_for("y") is two
    assert r.service_for("x") is one


def test_a_type_routed_to_a_service_this_worker_lacks_is_not_claimed_here() -> None:
    # Another worker may have that service: this one must not render the type with its own.
    r = router(Service("local", ["doubt", "manim"]), overrides={"doubt": "orchestrator"})
    r.queue_config = {"manim": QueueConfig("manim", service="manim_revideo")}
    assert r.routes() == {}
    assert r.service_for("doubt") is None
    assert r.claimable_types() == []


def test_routes_follow_a_new_queue_config_and_only_a_new_one() -> None:
    r = router(Service("a", ["t"]), Service("b"))
    assert r.routes() == {"t": "a"}
    config = {"t": QueueConfig("t", service="b")}
    r.queue_config = config
    assert r.queue_config == config
    assert r.routes() == {"t": "b"}
    routes = r.routes()
    r.queue_config = {"t": QueueConfig("t", service="b")}  # equal: the table is kept
    assert r.routes() is routes
    r.queue_config = {}
    assert r.routes() == {"t": "a"}


def test_routes_are_computed_once_per_configuration() -> None:
    r = router(Service("a", ["t"]))
    assert r.routes() is r.routes()


# -- what may be claimed ------------------------------------------------------------


def test_claimable_types_are_sorted_and_leave_out_paused_types() -> None:
    r = router(Service("s", ["zeta", "alpha", "mid"]))
    assert r.claimable_types() == ["alpha", "mid", "zeta"]
    r.queue_config = {
        "mid": QueueConfig("mid", paused=True),
        "zeta": QueueConfig("zeta", paused=False, timeout_s=5),
    }
    assert r.claimable_types() == ["alpha", "zeta"]
    # A paused type first in the table leaves the types after it claimable.
    r.queue_config = {"zeta": QueueConfig("zeta", paused=True)}
    assert r.claimable_types() == ["alpha", "mid"]


def test_an_unhealthy_service_has_its_types_left_out_until_it_passes() -> None:
    r = router(Service("sick", ["a", "b"]), Service("well", ["c"]))
    r.set_health("sick", False, "HTTP 503")
    assert r.unhealthy == {"sick": "HTTP 503"}
    assert r.claimable_types() == ["c"]
    r.set_health("sick", False, None)
    assert r.unhealthy == {"sick": "health check failed"}
    r.set_health("sick", True, None)
    assert r.unhealthy == {}
    assert r.claimable_types() == ["a", "b", "c"]
    r.set_health("well", True, None)  # healthy and already healthy: nothing changes
    assert r.claimable_types() == ["a", "b", "c"]


def test_timeout_and_concurrency_come_from_the_queue_config() -> None:
    r = router(Service("s", ["a", "b"]))
    r.queue_config = {"a": QueueConfig("a", timeout_s=42.5, concurrency=3)}
    assert r.timeout_for("a", 600.0) == 42.5
    assert r.timeout_for("b", 600.0) == 600.0
    assert r.concurrency_for("a") == 3
    assert r.concurrency_for("b") is None


# -- the circuit breaker ------------------------------------------------------------


def test_service_trouble_is_timeouts_api_errors_and_network_errors() -> None:
    assert (
        frozenset({ErrorCategory.TIMEOUT, ErrorCategory.API_ERROR, ErrorCategory.NETWORK})
        == SERVICE_TROUBLE
    )


@pytest.mark.parametrize("category", sorted(SERVICE_TROUBLE))
def test_service_trouble_opens_the_circuit_at_the_threshold(
    clock: Clock, category: ErrorCategory
) -> None:
    r = router(Service("s", ["a"]), Service("other", ["b"]), breaker_threshold=3)
    assert fail(r, "s", 3, category) == [False, False, True]
    assert r.claimable_types() == ["b"]  # only the failing service's types stop


@pytest.mark.parametrize(
    "category", [c for c in ErrorCategory if c not in SERVICE_TROUBLE], ids=str
)
def test_other_categories_say_nothing_about_the_service(
    clock: Clock, category: ErrorCategory
) -> None:
    # Bad input, a bad answer, a rate limit, a cancel, a bug: the job's trouble, or a
    # service that answered; none of them count, and each ends a streak of trouble.
    r = router(Service("s", ["a"]), breaker_threshold=3)
    assert fail(r, "s", 10, category) == [False] * 10
    assert r.claimable_types() == ["a"]
    assert fail(r, "s", 2, ErrorCategory.API_ERROR) == [False, False]
    assert r.record_outcome("s", category) is False
    assert fail(r, "s", 2, ErrorCategory.API_ERROR) == [False, False]
    assert r.claimable_types() == ["a"]
    assert r.record_outcome("s", ErrorCategory.API_ERROR) is True


def test_a_success_ends_the_streak(clock: Clock) -> None:
    r = router(Service("s", ["a"]), breaker_threshold=3)
    assert fail(r, "s", 2, ErrorCategory.TIMEOUT) == [False, False]
    assert r.record_outcome("s", None) is False
    assert fail(r, "s", 2, ErrorCategory.TIMEOUT) == [False, False]
    assert r.claimable_types() == ["a"]


def test_streaks_are_counted_per_service(clock: Clock) -> None:
    r = router(Service("s", ["a"]), Service("t", ["b"]), breaker_threshold=2)
    assert r.record_outcome("s", ErrorCategory.NETWORK) is False
    assert r.record_outcome("t", ErrorCategory.NETWORK) is False
    assert r.record_outcome("t", None) is False
    assert r.record_outcome("s", ErrorCategory.NETWORK) is True
    assert r.claimable_types() == ["b"]


def test_the_defaults_are_five_failures_and_thirty_seconds(clock: Clock) -> None:
    r = router(Service("s", ["a"]))
    assert (r.breaker_threshold, r.breaker_cooldown) == (5, 30.0)
    assert fail(r, "s", 5, ErrorCategory.API_ERROR) == [False] * 4 + [True]
    clock.now = 29.9
    assert r.claimable_types() == []
    clock.now = 30.0
    assert r.claimable_types() == ["a"]


def test_the_circuit_closes_after_the_cooldown(clock: Clock) -> None:
    r = router(Service("s", ["a"]), breaker_threshold=2, breaker_cooldown=10.0)
    clock.now = 100.0
    assert fail(r, "s", 2, ErrorCategory.API_ERROR) == [False, True]
    assert r.claimable_types() == []
    clock.now = 109.5
    assert r.claimable_types() == []
    clock.now = 110.0  # the cooldown is over at its last instant
    assert r.claimable_types() == ["a"]


def test_failures_while_open_do_not_extend_the_cooldown(clock: Clock) -> None:
    r = router(Service("s", ["a"]), breaker_threshold=2, breaker_cooldown=10.0)
    assert fail(r, "s", 2, ErrorCategory.API_ERROR) == [False, True]
    clock.now = 5.0
    # Jobs already running when it opened still fail; they do not open it again.
    assert fail(r, "s", 3, ErrorCategory.API_ERROR) == [False, False, False]
    clock.now = 10.0
    assert r.claimable_types() == ["a"]


def test_after_the_cooldown_one_more_failure_opens_it_again(clock: Clock) -> None:
    # The streak was not broken: the first job tried after the cooldown is the probe.
    r = router(Service("s", ["a"]), breaker_threshold=3, breaker_cooldown=10.0)
    assert fail(r, "s", 3, ErrorCategory.NETWORK) == [False, False, True]
    clock.now = 10.0
    assert r.record_outcome("s", ErrorCategory.NETWORK) is True
    assert r.claimable_types() == []
    clock.now = 19.0
    assert r.claimable_types() == []
    clock.now = 20.0
    assert r.claimable_types() == ["a"]


def test_after_the_cooldown_a_success_starts_a_new_streak(clock: Clock) -> None:
    r = router(Service("s", ["a"]), breaker_threshold=2, breaker_cooldown=10.0)
    assert fail(r, "s", 2, ErrorCategory.TIMEOUT) == [False, True]
    clock.now = 10.0
    assert r.record_outcome("s", None) is False
    assert fail(r, "s", 2, ErrorCategory.TIMEOUT) == [False, True]


def test_a_passing_health_check_closes_the_circuit_and_ends_the_streak(clock: Clock) -> None:
    r = router(Service("s", ["a"]), breaker_threshold=2, breaker_cooldown=3600.0)
    assert fail(r, "s", 2, ErrorCategory.API_ERROR) == [False, True]
    assert r.claimable_types() == []
    r.set_health("s", True, None)
    assert r.claimable_types() == ["a"]
    assert r.unhealthy == {}
    # A fresh streak: one failure is not enough to open it again.
    assert r.record_outcome("s", ErrorCategory.API_ERROR) is False
    assert r.claimable_types() == ["a"]
    assert r.record_outcome("s", ErrorCategory.API_ERROR) is True


def test_a_failing_health_check_does_not_close_the_circuit(clock: Clock) -> None:
    r = router(Service("s", ["a"]), breaker_threshold=1, breaker_cooldown=10.0)
    assert r.record_outcome("s", ErrorCategory.API_ERROR) is True
    r.set_health("s", False, "HTTP 503")
    clock.now = 10.0  # the cooldown is over, but the health check still fails
    assert r.claimable_types() == []
    r.set_health("s", True, None)
    assert r.claimable_types() == ["a"]


def test_a_failing_health_check_keeps_the_streak(clock: Clock) -> None:
    r = router(Service("s", ["a"]), breaker_threshold=2, breaker_cooldown=10.0)
    assert r.record_outcome("s", ErrorCategory.API_ERROR) is False
    r.set_health("s", False, "HTTP 503")
    assert r.record_outcome("s", ErrorCategory.API_ERROR) is True


def test_a_service_is_usable_only_when_healthy_and_its_circuit_closed(clock: Clock) -> None:
    """What the health checks consult to wake the claim lanes when a service comes back."""
    r = router(Service("svc", ["doubt"]), breaker_threshold=2, breaker_cooldown=10)
    assert r.usable("svc")
    fail(r, "svc", 2, ErrorCategory.API_ERROR)
    assert not r.usable("svc")
    clock.now = 10.0  # the cooldown is over: the circuit is closed again
    assert r.usable("svc")
    fail(r, "svc", 2, ErrorCategory.API_ERROR)
    r.set_health("svc", True, None)
    assert r.usable("svc")
    r.set_health("svc", False, "down")
    assert not r.usable("svc")
