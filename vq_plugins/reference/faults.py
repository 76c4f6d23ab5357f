"""Fault injection for the reference services: what a misbehaving peer does.

A request carries its own faults in an ``X-Fault`` header (or a ``fault`` query
parameter), written ``key=value`` pairs separated by ``;`` (not commas: an HTTP date in
``retry_after`` has one); a bare key means true: ``X-Fault: status=429; retry_after=3``
or ``?fault=drop_connection``. Without one, the global faults set by ``POST /_faults``
(a JSON object of the same keys) apply, optionally to the next ``times`` requests only.
"""

from __future__ import annotations

import random
import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

FAULT_HEADER = "x-fault"
FAULT_QUERY = "fault"


class Faults(BaseModel):
    """What to do wrong; every field defaults to behaving well."""

    model_config = ConfigDict(extra="forbid")

    latency_s: float = Field(default=0.0, ge=0, le=3600, description="delay before answering")
    error_rate: float = Field(default=0.0, ge=0, le=1, description="share of answers that are 500")
    status: int | None = Field(default=None, ge=400, le=599, description="answer this status")
    retry_after: str | None = Field(
        default=None, max_length=64,
        description="answer 429 (unless status says otherwise) with this Retry-After",
    )
    malformed: bool = Field(default=False, description="200 with a body that is not JSON")
    missing_url: bool = Field(default=False, description="200 JSON without video_url")
    bad_video_url: bool = Field(default=False, description="200 with a video_url that 404s")
    not_video: bool = Field(default=False, description="200 with a video_url serving HTML")
    drop_connection: bool = Field(default=False, description="close the socket mid-answer")
    unhealthy: bool = Field(default=False, description="GET /health answers 503")
    times: int | None = Field(
        default=None, ge=1, description="global faults only: apply to the next N requests"
    )

    @property
    def error_status(self) -> int | None:
        """The error status this fault answers with, before any random 500."""
        if self.status is not None:
            return self.status
        return 429 if self.retry_after is not None else None

    def is_noop(self) -> bool:
        """Whether nothing would go wrong."""
        return self.model_copy(update={"times": None}) == Faults()


class FaultError(ValueError):
    """A fault specification that cannot be parsed; the message names the key."""


def parse_fault_spec(spec: str) -> Faults:
    """Parse ``"status=429; retry_after=3"`` (``;`` between pairs)."""
    fields: dict[str, Any] = {}
    for part in spec.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        fields[key.strip()] = value.strip() if sep else True
    return faults_from(fields)


def faults_from(data: Any) -> Faults:
    """Validate a mapping of faults; :raises FaultError: naming each bad key."""
    try:
        return Faults.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'faults'}: {err['msg']}"
            for err in exc.errors()
        )
        raise FaultError(problems) from None


class FaultBox:
    """The global faults, shared by request handlers; safe across threads."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._lock = threading.Lock()
        self._faults = Faults()
        self._rng = rng or random.Random()

    def set(self, faults: Faults) -> None:
        """Replace the global faults."""
        with self._lock:
            self._faults = faults

    def get(self) -> Faults:
        """The global faults now, without consuming them."""
        with self._lock:
            return self._faults

    def take(self) -> Faults:
        """The faults for one service request, counting down ``times``."""
        with self._lock:
            faults = self._faults
            if faults.times is not None:
                left = faults.times - 1
                self._faults = faults.model_copy(update={"times": left}) if left else Faults()
            return faults

    def roll(self, rate: float) -> bool:
        """True with probability ``rate``."""
        with self._lock:
            return rate > 0 and self._rng.random() < rate
