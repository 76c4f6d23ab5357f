"""The built-in error policy: how an exception is categorised and how long a retry waits."""

from __future__ import annotations

import asyncio
import random

from vq_core.errors import InvalidInput, ServiceError
from vq_core.models import ErrorCategory


def default_category(exc: BaseException) -> ErrorCategory:
    """Categorise an exception no plugin claimed."""
    if isinstance(exc, ServiceError):
        return exc.category
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return ErrorCategory.TIMEOUT
    if isinstance(exc, InvalidInput):
        return ErrorCategory.INVALID_INPUT
    if isinstance(exc, ConnectionError | OSError):
        return ErrorCategory.NETWORK
    return ErrorCategory.UNKNOWN


def backoff_delay(
    attempt: int,
    base: float,
    cap: float,
    rng: random.Random | None = None,
) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**(attempt-1))].

    Full jitter spreads a burst of failures (a service that was down for everyone)
    so the retries do not arrive together.
    """
    if attempt < 1:
        raise ValueError("attempt starts at 1")
    ceiling = min(cap, base * 2 ** min(attempt - 1, 32))
    return (rng or random).uniform(0, ceiling)


def retry_delay(
    exc: BaseException,
    attempt: int,
    base: float,
    cap: float,
    rng: random.Random | None = None,
) -> float:
    """The wait before the next attempt; a service's Retry-After wins when it asks for longer."""
    delay = backoff_delay(attempt, base, cap, rng)
    if isinstance(exc, ServiceError) and exc.retry_after is not None:
        delay = max(delay, min(exc.retry_after, cap))
    return delay
