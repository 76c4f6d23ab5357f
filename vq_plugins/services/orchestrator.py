"""The ``orchestrator`` service: one ``POST {base}/render`` produces the whole video.

Configuration (``vq.toml``; there is no default host, so nothing is registered until
``base_url`` is set)::

    [plugin_config.orchestrator]
    base_url = "http://127.0.0.1:9000"
    job_types = ["doubt"]        # default: none; route types here with job_queue_config
    connect_timeout = 5          # seconds
    read_timeout = 600           # seconds; a render may take ten minutes
    api_key = "..."              # optional, sent as X-Api-Key
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vq_core import hookimpl
from vq_core.config import Settings
from vq_core.models import ClaimedJob
from vq_core.video_service import ProgressCallback, VideoService
from vq_plugins.services.http_service import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    base_url_option,
    client_options,
    get_ok,
    is_http_url,
    make_client,
    post_json,
    validate_payload,
)

# Only for annotations: httpx is imported by http_service.make_client, when a client is
# made (see http_service's imports).
if TYPE_CHECKING:
    import httpx

NAME = "orchestrator"
CALL = "POST /render"
MAX_NOTE_CHARS = 200
log = logging.getLogger(__name__)


def video_result(data: dict[str, Any], service: str) -> dict[str, Any]:
    """The job result from a service's checked answer: the video fields, the service, and
    what the service says made the video (``renderer``, ``reference``, ``fallback``,
    ``narrated``), kept only when they have the documented types."""
    result: dict[str, Any] = {"video_url": data["video_url"], "service": service}
    thumbnail = data.get("thumbnail_url")
    if isinstance(thumbnail, str) and thumbnail:
        result["thumbnail_url"] = thumbnail
    duration = data.get("duration")
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        result["duration"] = float(duration)
    captions = data.get("captions_url")
    if is_http_url(captions):
        result["captions_url"] = captions
    # What made the video, so the page can tell a stand-in from a production render.
    for key in ("renderer", "fallback"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            result[key] = value.strip()[:MAX_NOTE_CHARS]
    for key in ("reference", "narrated"):
        if isinstance(data.get(key), bool):
            result[key] = data[key]
    return result


class OrchestratorService:
    """A client of the orchestrator contract (docs/services.md)."""

    name = NAME

    def __init__(
        self,
        base_url: str,
        job_types: Sequence[str] = (),
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        api_key: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.job_types: Sequence[str] = tuple(job_types)
        headers = {"X-Api-Key": api_key} if api_key else {}
        self._client = client or make_client(connect_timeout, read_timeout, headers)

    def request_body(self, job: ClaimedJob) -> dict[str, Any]:
        """The documented body: ``{job_id, job_type, input, style, length, voice}``.

        :raises ServiceError: ``INVALID_INPUT`` when the payload fails validation.
        """
        payload = validate_payload(job.payload, service=self.name)
        return {
            "job_id": str(job.id),
            "job_type": job.job_type,
            "input": payload.input,
            "style": payload.style,
            "length": payload.length,
            "voice": payload.voice,
        }

    async def render(self, job: ClaimedJob, progress: ProgressCallback) -> dict[str, Any]:
        """Ask the orchestrator for the video; the job id is the idempotency key, so a
        retried attempt can be answered from the service's earlier work."""
        body = self.request_body(job)
        await progress(5.0, "requesting")
        data = await post_json(
            self._client,
            f"{self.base_url}/render",
            body,
            service=self.name,
            call=CALL,
            headers={"Idempotency-Key": str(job.id)},
        )
        # The worker checks the URL next, before the job completes.
        await progress(95.0, "verifying")
        return video_result(data, self.name)

    def video_origins(self) -> Sequence[str]:
        """The base URL: by default the video is served where it was rendered."""
        return (self.base_url,)

    async def health(self) -> bool:
        """``GET {base}/health`` answers 2xx."""
        return await get_ok(self._client, f"{self.base_url}/health")

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def from_settings(settings: Settings) -> OrchestratorService | None:
    """The configured service, or ``None`` when no ``base_url`` is set."""
    options = settings.plugin_settings(NAME)
    base_url = base_url_option(options, "base_url", NAME)
    if base_url is None:
        if options:
            log.warning("orchestrator: plugin_config.orchestrator has no base_url; not registered")
        return None
    return OrchestratorService(base_url, **client_options(options, NAME))


@hookimpl
def vq_register_services(settings: Settings) -> list[VideoService]:
    """Provide the orchestrator client when a base URL is configured."""
    service = from_settings(settings)
    return [service] if service is not None else []
