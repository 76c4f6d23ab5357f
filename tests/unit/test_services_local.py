"""The local renderer: a real H.264 MP4 served over HTTP, progress from the render thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from support.services import ProgressLog, claimed, download, reference_server

from vq_core.config import ConfigError, Settings
from vq_core.errors import ServiceError
from vq_core.models import ErrorCategory
from vq_core.video_service import declared_video_origins
from vq_core.worker.verification import verify_video
from vq_plugins.reference.reference_services import ReferenceServer
from vq_plugins.services import local_renderer
from vq_plugins.services.local_renderer import LocalRenderer, ProgressPump
from vq_plugins.services.render_engine import probe


@pytest.fixture
def media_server(tmp_path: Path) -> Iterator[ReferenceServer]:
    """Stands in for the web server of ``vq run``: serves the media folder at /media."""
    with reference_server(tmp_path / "media") as server:
        yield server


def renderer(server: ReferenceServer, max_length: float = 120.0) -> LocalRenderer:
    return LocalRenderer(
        server.media_dir,
        server.url,
        size=(160, 96),
        fps=8,
        max_length=max_length,
        progress_interval=0.05,
    )


async def test_renders_a_playable_h264_video(media_server: ReferenceServer, tmp_path: Path) -> None:
    progress = ProgressLog()
    job = claimed({"question": "Why do objects fall at the same rate?", "length": 6})
    service = renderer(media_server)
    result = await service.render(job, progress)
    assert result["video_url"] == f"{media_server.url}/media/{job.id}.mp4"
    assert result["thumbnail_url"] == f"{media_server.url}/media/{job.id}.jpg"
    assert result["duration"] == pytest.approx(6.0, abs=0.15)
    assert result["narrated"] is True and result["renderer"] == "local"
    assert result["scene_type"] == "steps"  # a "why" question
    assert result["captions_url"] == f"{media_server.url}/media/{job.id}.vtt"
    # The renderer declares the origin its URLs use, so the worker's default allows them.
    await verify_video(result["video_url"], origins=declared_video_origins([service]))
    codec, duration = probe(await download(result["video_url"], tmp_path / "got.mp4"))
    assert codec == "h264"
    assert duration == pytest.approx(6.0, abs=0.15)
    with Image.open(await download(result["thumbnail_url"], tmp_path / "got.jpg")) as thumb:
        assert thumb.size == (160, 96)
    percents = [p for p, _ in progress.calls]
    assert percents[0] == 0.0 and percents[-1] == 100.0
    assert percents == sorted(percents)
    assert progress.stages[-1] == "done"


async def test_length_is_capped_at_max_length(media_server: ReferenceServer) -> None:
    result = await renderer(media_server, max_length=5).render(
        claimed({"topic": "Fractions", "length": 300}), ProgressLog()
    )
    assert result["duration"] == pytest.approx(5.0, abs=0.15)


async def test_bad_payload_renders_nothing(media_server: ReferenceServer) -> None:
    with pytest.raises(ServiceError) as info:
        await renderer(media_server).render(claimed({"length": 10}), ProgressLog())
    assert info.value.category is ErrorCategory.INVALID_INPUT
    assert info.value.service == "local"
    assert list(media_server.media_dir.iterdir()) == []


async def test_progress_pump_keeps_order_and_the_last_value() -> None:
    seen: list[tuple[float, str]] = []
    release = asyncio.Event()

    async def slow_store(percent: float, stage: str) -> None:
        seen.append((percent, stage))
        await release.wait()  # a slow database: the thread must not wait for it

    async with ProgressPump(slow_store, interval=0.0) as pump:
        reported = threading.Event()

        def render_thread() -> None:
            for i in range(1, 101):
                pump.report(float(i), "diagram" if i < 100 else "done")
            reported.set()

        await asyncio.to_thread(render_thread)
        assert reported.is_set()  # all 100 reports returned while the store was blocked
        release.set()
    assert seen[-1] == (100.0, "done")
    assert len(seen) < 100  # stale values were dropped, not queued
    assert [p for p, _ in seen] == sorted(p for p, _ in seen)


def test_registration_and_options(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        public_url="http://127.0.0.1:8123/",
        plugin_config={"local": {"job_types": "doubt,lesson", "width": "320", "max_length": 30}},
    )
    [service] = local_renderer.vq_register_services(settings)
    assert isinstance(service, LocalRenderer)
    assert service.media_dir == tmp_path / "media"
    assert service.public_url == "http://127.0.0.1:8123"
    assert (tuple(service.job_types), service.size, service.max_length) == (
        ("doubt", "lesson"),
        (320, 360),
        30.0,
    )
    with pytest.raises(ConfigError, match="even"):
        local_renderer.from_settings(
            Settings(data_dir=tmp_path, plugin_config={"local": {"width": 321}})
        )


async def test_health_reports_an_unwritable_media_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert await LocalRenderer(tmp_path / "media", "http://127.0.0.1:1").health() is True
    assert await LocalRenderer(blocker / "media", "http://127.0.0.1:1").health() is False
