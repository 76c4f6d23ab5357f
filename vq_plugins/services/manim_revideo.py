"""The ``manim_revideo`` service: an optional Manim animation, then a Revideo composition.

Configuration (no default hosts; nothing is registered until both URLs are set)::

    [plugin_config.manim_revideo]
    manim_base_url = "http://127.0.0.1:9000/manim"
    revideo_base_url = "http://127.0.0.1:9000/revideo"
    job_types = ["doubt"]        # default: none; route types here with job_queue_config
    connect_timeout = 5
    read_timeout = 600
    api_key = "..."              # optional, sent as X-Api-Key to both

Whether a job gets an animation (``needs_animation``): ``payload.animate`` (true or
false) decides when present; otherwise yes when ``payload.subject`` is a mathematical
or physical subject, or when the question or topic uses a visual word (diagram, graph,
plot, geometry, proof, derive, ...); otherwise no.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vq_core import hookimpl
from vq_core.config import ConfigError, Settings
from vq_core.models import ClaimedJob
from vq_core.video_service import ProgressCallback, VideoService
from vq_plugins.services.doubt_kinds import SceneKind, classify
from vq_plugins.services.http_service import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DoubtPayload,
    base_url_option,
    client_options,
    get_ok,
    make_client,
    post_json,
    validate_payload,
)
from vq_plugins.services.orchestrator import MAX_NOTE_CHARS, video_result

# Only for annotations: httpx is imported by http_service.make_client, when a client is
# made (see http_service's imports).
if TYPE_CHECKING:
    import httpx

NAME = "manim_revideo"
MANIM_CALL = "POST manim /render"
REVIDEO_CALL = "POST revideo /compose"
INTRO_SECONDS = 5
OUTRO_SECONDS = 3
log = logging.getLogger(__name__)

ANIMATED_SUBJECTS = frozenset(
    {
        "math",
        "maths",
        "mathematics",
        "physics",
        "geometry",
        "algebra",
        "calculus",
        "trigonometry",
        "statistics",
        "mechanics",
    }
)
_VISUAL_WORDS = re.compile(
    r"\b(diagram|graph|plot|geometr\w*|proof|prove|derive|derivation|visuali[sz]e\w*|"
    r"draw|sketch|curve|vector|triangle|circle|angle|parabola|slope|area|shape)s?\b",
    re.IGNORECASE,
)


def needs_animation(payload: DoubtPayload) -> bool:
    """Whether a doubt gets a Manim clip (the rule in the module docstring)."""
    if payload.animate is not None:
        return payload.animate
    if payload.subject and payload.subject.strip().lower() in ANIMATED_SUBJECTS:
        return True
    return bool(_VISUAL_WORDS.search(payload.input))


def compose_body(payload: DoubtPayload, manim_url: str | None) -> dict[str, Any]:
    """Revideo's body: intro, the Manim clip (only if there is one), the question as
    narration, the explanation as a second narration when there is one, outro."""
    segments: list[dict[str, Any]] = [{"type": "intro", "duration": INTRO_SECONDS}]
    if manim_url is not None:
        segments.append({"type": "manim", "url": manim_url})
    segments.append({"type": "narration", "text": payload.input})
    if payload.explanation:
        segments.append({"type": "narration", "text": payload.explanation})
    segments.append({"type": "outro", "duration": OUTRO_SECONDS})
    return {"segments": segments, "audio": {"voice": payload.voice, "speed": payload.speed}}


def animation_notes(clip: dict[str, Any]) -> dict[str, Any]:
    """What the Manim answer says made the clip, for the job's result: ``manim_renderer``,
    ``scene_type`` and ``fallback``, each kept only when it is a short string."""
    notes: dict[str, Any] = {}
    for source, target in (("renderer", "manim_renderer"), ("scene_type", "scene_type"),
                           ("fallback", "fallback")):
        value = clip.get(source)
        if isinstance(value, str) and value.strip():
            notes[target] = value.strip()[:MAX_NOTE_CHARS]
    return notes


class ManimClient:
    """``POST {base}/render {scene_type, content, style}`` -> ``{video_url}``; the scene
    type is read from the content (``doubt_kinds.classify``): plot, steps or diagram."""

    def __init__(self, base_url: str, client: httpx.AsyncClient) -> None:
        self.base_url, self._client = base_url.rstrip("/"), client

    async def render(
        self, content: str, style: str, key: str | None = None, scene_type: SceneKind | None = None
    ) -> str:
        """Render the scene for ``content`` and return its URL.

        :param scene_type: the scene to ask for; default: ``classify(content)``.
        :raises ServiceError: categorised failure of the call (a 504 is a ``TIMEOUT``).
        """
        data = await self.animate(content, style, key, scene_type)
        return str(data["video_url"])

    async def animate(
        self, content: str, style: str, key: str | None = None, scene_type: SceneKind | None = None
    ) -> dict[str, Any]:
        """Like ``render``, but the whole checked answer (``video_url`` at least)."""
        body = {"scene_type": scene_type or classify(content), "content": content, "style": style}
        headers = {"Idempotency-Key": key} if key else None
        return await post_json(
            self._client,
            f"{self.base_url}/render",
            body,
            service="manim",
            call=MANIM_CALL,
            headers=headers,
        )


class RevideoClient:
    """``POST {base}/compose {segments, audio}`` -> ``{video_url}``."""

    def __init__(self, base_url: str, client: httpx.AsyncClient) -> None:
        self.base_url, self._client = base_url.rstrip("/"), client

    async def compose(self, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        """Compose the video and return the checked answer (``video_url`` at least).

        :raises ServiceError: categorised failure of the call.
        """
        headers = {"Idempotency-Key": key} if key else None
        return await post_json(
            self._client,
            f"{self.base_url}/compose",
            body,
            service="revideo",
            call=REVIDEO_CALL,
            headers=headers,
        )


class ManimRevideoService:
    """The two-step pipeline as one video service."""

    name = NAME

    def __init__(
        self,
        manim_base_url: str,
        revideo_base_url: str,
        job_types: Sequence[str] = (),
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        api_key: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.job_types: Sequence[str] = tuple(job_types)
        headers = {"X-Api-Key": api_key} if api_key else {}
        self._client = client or make_client(connect_timeout, read_timeout, headers)
        self.manim = ManimClient(manim_base_url, self._client)
        self.revideo = RevideoClient(revideo_base_url, self._client)

    async def render(self, job: ClaimedJob, progress: ProgressCallback) -> dict[str, Any]:
        """Validate, animate if needed, compose; progress is reported per stage."""
        payload = validate_payload(job.payload, service=self.name)
        manim_url: str | None = None
        clip: dict[str, Any] = {}
        if needs_animation(payload):
            await progress(5.0, "animating")
            # Each step gets its own key so a retry re-uses whichever step already finished.
            clip = await self.manim.animate(payload.input, payload.style, f"{job.id}:manim")
            manim_url = str(clip["video_url"])
        await progress(50.0, "composing")
        data = await self.revideo.compose(compose_body(payload, manim_url), f"{job.id}:compose")
        await progress(95.0, "verifying")
        result = video_result(data, self.name)
        result["animated"] = manim_url is not None
        if manim_url is not None:
            result["manim_url"] = manim_url
            result.update(animation_notes(clip))
        return result

    def video_origins(self) -> Sequence[str]:
        """The two base URLs: the composed video is served by one of them by default."""
        return (self.manim.base_url, self.revideo.base_url)

    async def health(self) -> bool:
        """Both ``{base}/health`` endpoints answer 2xx."""
        manim_ok = await get_ok(self._client, f"{self.manim.base_url}/health")
        return manim_ok and await get_ok(self._client, f"{self.revideo.base_url}/health")

    async def aclose(self) -> None:
        """Close the shared connection pool."""
        await self._client.aclose()


def from_settings(settings: Settings) -> ManimRevideoService | None:
    """The configured pipeline, or ``None`` when neither URL is set.

    :raises ConfigError: only one of the two URLs is set.
    """
    options = settings.plugin_settings(NAME)
    manim = base_url_option(options, "manim_base_url", NAME)
    revideo = base_url_option(options, "revideo_base_url", NAME)
    if manim is None and revideo is None:
        if options:
            log.warning("manim_revideo: no manim_base_url/revideo_base_url; not registered")
        return None
    if manim is None or revideo is None:
        missing = "manim_base_url" if manim is None else "revideo_base_url"
        raise ConfigError(f"plugin_config.{NAME}.{missing}: required when the other URL is set")
    return ManimRevideoService(manim, revideo, **client_options(options, NAME))


@hookimpl
def vq_register_services(settings: Settings) -> list[VideoService]:
    """Provide the Manim + Revideo pipeline when both base URLs are configured."""
    service = from_settings(settings)
    return [service] if service is not None else []
