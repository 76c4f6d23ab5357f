"""What a video service plugin provides, as the worker sees it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

# httpx is imported where a URL is read: importing it (and the rich console its own
# command line brings) would cost every ``vq`` command a tenth of a second. The job
# models are only named in annotations: vq_core.config imports url_origin from here,
# and building them cost every command 6 ms.
if TYPE_CHECKING:
    import httpx

    from vq_core.models import ClaimedJob

# progress(percent 0..100, stage) -> awaitable; the worker stores it on the job.
ProgressCallback = Callable[[float, str], Awaitable[None]]


@runtime_checkable
class VideoService(Protocol):
    """A renderer of jobs. ``render`` returns the job's result, normally
    ``{"video_url": ..., "thumbnail_url": ..., "duration": ...}``, or raises
    (ideally a ``vq_core.errors.ServiceError`` with a category).

    A service may also define ``video_origins() -> Sequence[str]`` (see
    ``DeclaresVideoOrigins``): the origins its ``video_url`` may point to, which the
    worker's video check allows when the ``video_origins`` setting is empty. A service
    without it adds no origin."""

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


@runtime_checkable
class DeclaresVideoOrigins(Protocol):
    """The optional part of a ``VideoService``: where its videos are served from."""

    def video_origins(self) -> Sequence[str]:
        """URLs (only their origins count) the service's ``video_url`` may point to."""
        ...


def url_origin(url: str | httpx.URL) -> str:
    """The origin of an http(s) URL as ``scheme://host:port``, the port always written.

    Parsed by httpx, the client that fetches the URL, so the check and the request
    cannot read a URL differently (``http://127.0.0.1:80@evil/`` is ``evil``'s).

    :raises ValueError: not an absolute http(s) URL with a host and a valid port.
    """
    import httpx

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise ValueError(f"not an absolute http(s) URL: {str(url)!r}")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} out of range in {str(url)!r}")
    host = parsed.raw_host.decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    return f"{parsed.scheme}://{host}:{port}"


def declared_video_origins(services: Iterable[VideoService]) -> set[str]:
    """The origins the given services declare through ``video_origins()``.

    :raises ValueError: a service declared something that is not an http(s) URL.
    """
    origins: set[str] = set()
    for service in services:
        if isinstance(service, DeclaresVideoOrigins):
            for url in service.video_origins():
                try:
                    origins.add(url_origin(url))
                except ValueError as exc:
                    raise ValueError(f"service {service.name}: video_origins(): {exc}") from None
    return origins
