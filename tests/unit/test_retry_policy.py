"""The built-in error policy: which category an exception gets, and how long a retry waits."""

from __future__ import annotations

import random

import pytest

from vq_core.errors import InvalidInput, ServiceError
from vq_core.models import ErrorCategory
from vq_core.worker.retry_policy import backoff_delay, default_category, retry_delay


class Highest(random.Random):
    """A generator that always draws the top of the range and remembers each range asked for."""

    def __init__(self) -> None:
        super().__init__(0)
        self.ranges: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.ranges.append((a, b))
        return b


def ceiling(attempt: int, base: float, cap: float) -> float:
    """The upper end of the jitter range for this attempt."""
    rng = Highest()
    delay = backoff_delay(attempt, base, cap, rng)
    assert rng.ranges == [(0, delay)]  # full jitter: the range always starts at zero
    return delay


@pytest.mark.parametrize(
    ("exc", "category"),
    [
        (ServiceError(ErrorCategory.RATE_LIMITED, "429"), ErrorCategory.RATE_LIMITED),
        (ServiceError(ErrorCategory.BAD_RESPONSE, "no url"), ErrorCategory.BAD_RESPONSE),
        (ServiceError(ErrorCategory.NETWORK, "reset"), ErrorCategory.NETWORK),
        # TimeoutError is an OSError: it must be told apart before the network check.
        (TimeoutError("render timed out"), ErrorCategory.TIMEOUT),
        (TimeoutError(), ErrorCategory.TIMEOUT),
        (InvalidInput("payload.length: too long"), ErrorCategory.INVALID_INPUT),
        (ConnectionRefusedError("refused"), ErrorCategory.NETWORK),
        (ConnectionResetError("reset by peer"), ErrorCategory.NETWORK),
        (OSError("no route to host"), ErrorCategory.NETWORK),
        (ValueError("not bad input, a bug"), ErrorCategory.UNKNOWN),
        (ZeroDivisionError("oops"), ErrorCategory.UNKNOWN),
        (KeyError("question"), ErrorCategory.UNKNOWN),
    ],
)
def test_default_category(exc: BaseException, category: ErrorCategory) -> None:
    assert default_category(exc) is category


def test_a_service_error_keeps_the_category_its_plugin_gave() -> None:
    # Even a category that a plain exception of the same kind would not get.
    assert default_category(ServiceError(ErrorCategory.TIMEOUT, "x")) is ErrorCategory.TIMEOUT
    error = ServiceError(ErrorCategory.INVALID_INPUT, "400 from the service")
    assert default_category(error) is ErrorCategory.INVALID_INPUT


def test_backoff_doubles_from_the_base_on_each_attempt() -> None:
    assert [ceiling(n, 2.0, 10_000) for n in range(1, 7)] == [2, 4, 8, 16, 32, 64]
    assert [ceiling(n, 0.5, 10_000) for n in range(1, 4)] == [0.5, 1.0, 2.0]


def test_backoff_never_exceeds_the_cap() -> None:
    assert ceiling(5, 2.0, 20.0) == 20.0  # 32 capped
    assert ceiling(4, 2.0, 16.0) == 16.0  # exactly the cap
    assert ceiling(10_000, 2.0, 600.0) == 600.0  # a huge attempt does not overflow


def test_the_exponent_stops_growing_at_32() -> None:
    # A retry count far beyond any real one must not build a number with millions of digits.
    assert ceiling(33, 1.0, 1e30) == 2.0**32
    assert ceiling(34, 1.0, 1e30) == 2.0**32
    assert ceiling(10**9, 1.0, 1e30) == 2.0**32


def test_backoff_is_jittered_over_the_whole_range() -> None:
    seeded = backoff_delay(3, 2.0, 600.0, random.Random(7))
    assert seeded == random.Random(7).uniform(0, 8.0)
    draws = [backoff_delay(3, 2.0, 600.0, random.Random(seed)) for seed in range(200)]
    assert all(0 <= d <= 8.0 for d in draws)
    assert min(draws) < 1.0 and max(draws) > 7.0  # spread, not one value


def test_backoff_without_a_generator_uses_the_module_one() -> None:
    random.seed(11)
    expected = random.Random(11).uniform(0, 4.0)
    assert backoff_delay(2, 2.0, 600.0) == expected


def test_zero_base_means_no_wait() -> None:
    assert backoff_delay(5, 0.0, 600.0, Highest()) == 0.0


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempts_start_at_one(attempt: int) -> None:
    with pytest.raises(ValueError, match=r"^attempt starts at 1$"):
        backoff_delay(attempt, 2.0, 600.0)


def test_retry_delay_is_the_backoff_for_an_ordinary_error() -> None:
    assert retry_delay(OSError("reset"), 3, 2.0, 600.0, Highest()) == 8.0
    no_header = ServiceError(ErrorCategory.API_ERROR, "503")
    assert retry_delay(no_header, 2, 2.0, 600.0, Highest()) == 4.0
    seeded = retry_delay(no_header, 2, 2.0, 600.0, random.Random(3))
    assert seeded == random.Random(3).uniform(0, 4.0)


def test_retry_after_wins_when_it_asks_for_longer() -> None:
    limited = ServiceError(ErrorCategory.RATE_LIMITED, "429", retry_after=7.0)
    assert retry_delay(limited, 1, 2.0, 600.0, Highest()) == 7.0


def test_backoff_wins_when_retry_after_is_shorter() -> None:
    limited = ServiceError(ErrorCategory.RATE_LIMITED, "429", retry_after=1.0)
    assert retry_delay(limited, 4, 2.0, 600.0, Highest()) == 16.0
    # Retry-After: 0 is an answer too, and the backoff still applies.
    now = ServiceError(ErrorCategory.RATE_LIMITED, "429", retry_after=0.0)
    assert retry_delay(now, 2, 2.0, 600.0, Highest()) == 4.0


def test_retry_after_is_capped_too() -> None:
    limited = ServiceError(ErrorCategory.RATE_LIMITED, "429", retry_after=86_400.0)
    assert retry_delay(limited, 1, 2.0, 600.0, Highest()) == 600.0


def test_a_retry_after_attribute_outside_a_service_error_is_ignored() -> None:
    class Odd(Exception):
        retry_after = 500.0

    assert retry_delay(Odd("x"), 1, 2.0, 600.0, Highest()) == 2.0
