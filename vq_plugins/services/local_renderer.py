"""The ``local`` service: renders a real H.264 MP4 on this machine, the default for doubts.

Files go to ``settings.resolved_media_dir`` as ``<job id>.mp4`` (H.264 with an AAC
narration track), ``<job id>.jpg`` and ``<job id>.vtt`` (the captions); the web server
of ``vq run`` serves that folder at ``/media``, so the result's URLs are
``{settings.resolved_public_url}/media/<job id>.mp4``. The video speaks the question and
``payload.explanation`` with ``payload.voice`` at ``payload.speed``. Options::

    [plugin_config.local]
    job_types = ["doubt"]        # the default
    max_length = 120             # seconds; longer requests are shortened to this
    width = 640
    height = 360
    fps = 24

Needs the ``render`` extra (PyAV, Pillow, numpy, espeakng-loader); without it the
service is not registered and a worker-only host still starts. Without espeak-ng alone
the videos are silent and the result says ``"narrated": false``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vq_core import hookimpl
from vq_core.config import ConfigError, Settings
from vq_core.errors import ServiceError
from vq_core.models import ClaimedJob, ErrorCategory
from vq_core.video_service import ProgressCallback, VideoService
from vq_plugins.services.http_service import float_option, job_types_option, validate_payload

NAME = "local"
log = logging.getLogger(__name__)


class ProgressPump:
    """Carries progress from the render thread to the event loop, newest value only.

    The thread never waits for the database: it overwrites one slot and wakes the
    pump, which awaits the async callback at most every ``interval`` seconds and in
    order. Stale intermediate values are dropped; a stage change is never skipped
    silently because the last value of a stage is what the slot holds when it flushes.
    """

    def __init__(self, callback: ProgressCallback, interval: float = 0.5) -> None:
        self._callback, self._interval = callback, interval
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._latest: tuple[float, str] | None = None
        self._task: asyncio.Task[None] | None = None
        # Held while a value is written, so closing never cancels a write half-way.
        self._writing = asyncio.Lock()

    def report(self, percent: float, stage: str) -> None:
        """Called from the render thread."""
        self._latest = (percent, stage)
        self._loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await self._flush()
            await asyncio.sleep(self._interval)  # throttle: at most one write per interval

    async def _flush(self) -> None:
        async with self._writing:
            self._wake.clear()
            latest, self._latest = self._latest, None
            if latest is not None:
                await self._callback(*latest)

    async def __aenter__(self) -> ProgressPump:
        self._task = asyncio.create_task(self._run(), name="vq-local-progress")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            async with self._writing:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if exc[0] is None:
            await self._flush()  # the final value (100 %, "done") always lands


class LocalRenderer:
    """Render jobs with ``vq_plugins.services.render_engine`` in a worker thread."""

    name = NAME

    def __init__(
        self,
        media_dir: Path,
        public_url: str,
        job_types: Sequence[str] = ("doubt",),
        max_length: float = 120.0,
        size: tuple[int, int] = (640, 360),
        fps: int = 24,
        progress_interval: float = 0.5,
    ) -> None:
        self.media_dir, self.public_url = media_dir, public_url.rstrip("/")
        self.job_types: Sequence[str] = tuple(job_types)
        self.max_length, self.size, self.fps = max_length, size, fps
        self.progress_interval = progress_interval

    async def render(self, job: ClaimedJob, progress: ProgressCallback) -> dict[str, Any]:
        """Render ``<job id>.mp4``, its thumbnail and captions; returns their URLs, the
        duration, whether the video speaks and the kind of scene it shows.

        :raises ServiceError: ``INVALID_INPUT`` for a bad payload or an unknown voice.
        """
        from vq_plugins.services import render_engine  # the render extra is only needed to render

        payload = validate_payload(job.payload, service=self.name)
        await asyncio.to_thread(self._check_voice, payload.voice)
        length = min(payload.length, self.max_length)
        name = str(job.id)
        async with ProgressPump(progress, self.progress_interval) as pump:
            await progress(0.0, "starting")
            rendered = await asyncio.to_thread(
                render_engine.render_explainer,
                self.media_dir,
                name,
                payload.input,
                body=payload.subject.title() if payload.subject else None,
                length=length,
                width=self.size[0],
                height=self.size[1],
                fps=self.fps,
                progress=pump.report,
                explanation=payload.explanation,
                voice=payload.voice,
                speed=payload.speed,
            )
        result: dict[str, Any] = {
            "video_url": self._url(rendered.video_path),
            "thumbnail_url": self._url(rendered.thumbnail_path),
            "duration": round(rendered.duration, 3),
            "narrated": rendered.narrated,
            "service": self.name,
            "renderer": "local",
            "scene_type": rendered.scene_type,
        }
        if rendered.captions_path is not None:
            result["captions_url"] = self._url(rendered.captions_path)
        return result

    def _url(self, path: Path) -> str:
        return f"{self.public_url}/media/{path.name}"

    def _check_voice(self, voice: str) -> None:
        """Fail before rendering when espeak-ng is here and does not know ``voice``."""
        from vq_plugins.services import speech

        try:
            speech.refuse_unknown_voice(voice)
        except ValueError as exc:
            raise ServiceError(
                ErrorCategory.INVALID_INPUT,
                f"{self.name}: invalid payload: payload.voice: {exc}",
                service=self.name,
                call="validate payload",
            ) from None

    def video_origins(self) -> Sequence[str]:
        """The public URL whose ``/media`` serves the rendered files."""
        return (self.public_url,)

    async def health(self) -> bool:
        """The media folder exists (or can be made) and is writable."""
        try:
            self.media_dir.mkdir(parents=True, exist_ok=True)
        except OSError:
            return False
        return self.media_dir.is_dir() and _writable(self.media_dir)

    async def aclose(self) -> None:
        """Nothing to release."""


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def render_extra_installed() -> bool:
    """Whether PyAV, Pillow and numpy can be imported here (espeak-ng is optional)."""
    return all(importlib.util.find_spec(m) is not None for m in ("av", "PIL", "numpy"))


def from_settings(settings: Settings) -> LocalRenderer:
    """The renderer configured by ``[plugin_config.local]``."""
    options = settings.plugin_settings(NAME)
    width = int(float_option(options, "width", 640, NAME))
    height = int(float_option(options, "height", 360, NAME))
    fps = int(float_option(options, "fps", 24, NAME))
    if width % 2 or height % 2:
        raise ConfigError(f"plugin_config.{NAME}: width and height must be even numbers")
    return LocalRenderer(
        settings.resolved_media_dir,
        settings.resolved_public_url,
        job_types=job_types_option(options, ("doubt",), NAME),
        max_length=float_option(options, "max_length", 120.0, NAME),
        size=(width, height),
        fps=fps,
    )


@hookimpl
def vq_register_services(settings: Settings) -> list[VideoService]:
    """Provide the local renderer when the render extra is installed."""
    if not render_extra_installed():
        log.info("local renderer not available: install vq[render] (PyAV, Pillow, numpy)")
        return []
    return [from_settings(settings)]
