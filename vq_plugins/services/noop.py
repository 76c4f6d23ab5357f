"""The ``noop`` service: completes at once. For tests, benchmarks and smoke checks."""

from __future__ import annotations

from typing import Any

from vq_core import hookimpl
from vq_core.config import Settings
from vq_core.models import ClaimedJob
from vq_core.video_service import ProgressCallback, VideoService


class NoopService:
    """Renders nothing and succeeds; ``payload.result`` (if a dict) becomes the result."""

    name = "noop"
    job_types = ("noop",)

    async def render(self, job: ClaimedJob, progress: ProgressCallback) -> dict[str, Any]:
        """Return at once."""
        result = job.payload.get("result")
        return dict(result) if isinstance(result, dict) else {}

    async def health(self) -> bool:
        """Always healthy."""
        return True

    async def aclose(self) -> None:
        """Nothing to release."""


@hookimpl
def vq_register_services(settings: Settings) -> list[VideoService]:
    """Provide the noop service."""
    return [NoopService()]
