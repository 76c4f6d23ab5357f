"""What a video service plugin provides, as the worker sees it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from vq_core.models import ClaimedJob

# progress(percent 0..100, stage) -> awaitable; the worker stores it on the job.
ProgressCallback = Callable[[float, str], Awaitable[None]]


@runtime_checkable
class VideoService(Protocol):
    """A renderer of jobs. ``render`` returns the job's result, normally
    ``{"video_url": ..., "thumbnail_url": ..., "duration": ...}``, or raises
    (ideally a ``vq_core.errors.ServiceError`` with a category)."""

    @property
    def name(self) -> str:
        """The service's name, as routing and ``job_queue_config.service`` refer to it."""
        ...

    @property
    def job_types(self) -> Sequence[str]:
        """Job types rendered by this service unless ``job_queue_config`` or
        ``Settings.services`` route them elsewhere."""
        ...

    async def render(self, job: ClaimedJob, progress: ProgressCallback) -> dict[str, Any]:
        """Render one job and return its result."""
        ...

    async def health(self) -> bool:
        """Whether the service answers its health check now."""
        ...

    async def aclose(self) -> None:
        """Release connections; called once when the worker stops."""
        ...
