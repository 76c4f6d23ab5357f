"""The reference Manim service renders real Manim CE scenes in a subprocess: one of each
kind, different to look at, composed into a video; the PyAV fallback; the time limit."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import psutil
import pytest
from support.frames import difference
from support.services import ProgressLog, claimed, download

from vq_core.errors import ServiceError
from vq_core.models import ErrorCategory
from vq_plugins.reference.app import RenderOptions
from vq_plugins.reference.manim_runner import SCENES_MODULE, manim_installed
from vq_plugins.reference.reference_services import ReferenceServer, start_reference_server
from vq_plugins.services.manim_revideo import ManimRevideoService
from vq_plugins.services.render_engine import probe

needs_manim = pytest.mark.skipif(
    not manim_installed(),
    reason="Manim CE is not installed: pip install -e '.[manim]' (make test installs it)",
)
SMALL = RenderOptions(width=320, height=180, fps=12, clip_seconds=2.5)
QUESTIONS = {
    "diagram": "What is Rayleigh scattering in the atmosphere?",
    "plot": "How do I plot y = x^2?",
    "steps": "Why is the sky blue at noon?",
}


def frames_of(path: Path) -> list[np.ndarray]:
    """Every frame of a video as an RGB array."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def render_processes(media_dir: Path) -> list[psutil.Process]:
    """Live render subprocesses writing into ``media_dir``."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if SCENES_MODULE in cmdline and str(media_dir) in cmdline:
            found.append(process)
    return found


@pytest.fixture(scope="module")
def manim_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceServer]:
    with start_reference_server(tmp_path_factory.mktemp("manim"), options=SMALL) as server:
        yield server


@pytest.fixture(scope="module")
def clips(manim_server: ReferenceServer) -> dict[str, tuple[dict[str, Any], Path]]:
    """One clip of each kind ("auto" scene type), rendered side by side: kind -> (answer, file)."""

    def render(kind: str) -> tuple[str, tuple[dict[str, Any], Path]]:
        response = httpx.post(
            f"{manim_server.url}/manim/render",
            json={"scene_type": "auto", "content": QUESTIONS[kind], "style": "detailed"},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        path = manim_server.media_dir / answer["video_url"].rpartition("/")[2]
        return kind, (answer, path)

    with ThreadPoolExecutor(len(QUESTIONS)) as pool:
        return dict(pool.map(render, QUESTIONS))


@needs_manim
@pytest.mark.parametrize("kind", list(QUESTIONS))
def test_each_kind_renders_an_h264_manim_clip(
    clips: dict[str, tuple[dict[str, Any], Path]], kind: str
) -> None:
    answer, path = clips[kind]
    assert answer["renderer"] == "manim" and answer["scene_type"] == kind
    assert "fallback" not in answer
    codec, decoded = probe(path)
    assert codec == "h264"
    assert abs(answer["duration"] - decoded) <= 0.1
    assert abs(decoded - SMALL.clip_seconds) <= 0.1
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (SMALL.width, SMALL.height)
    frames = frames_of(path)
    # It moves: the first and last frames differ.
    assert difference(frames[0], frames[-1]) > 0.5


@needs_manim
def test_the_three_kinds_look_different(clips: dict[str, tuple[dict[str, Any], Path]]) -> None:
    last = {kind: frames_of(path)[-1] for kind, (_, path) in clips.items()}
    kinds = list(last)
    for index, a in enumerate(kinds):
        for b in kinds[index + 1 :]:
            assert difference(last[a], last[b]) > 2.0, f"{a} and {b} look alike"


@needs_manim
async def test_the_clip_appears_in_a_composed_video(
    manim_server: ReferenceServer,
    clips: dict[str, tuple[dict[str, Any], Path]],
    tmp_path: Path,
) -> None:
    answer, clip_path = clips["plot"]
    body = {
        "segments": [
            {"type": "intro", "duration": 1, "text": "Coming up"},
            {"type": "manim", "url": answer["video_url"]},
            {"type": "outro", "duration": 1},
        ]
    }
    async with httpx.AsyncClient(timeout=120) as client:
        response = await client.post(f"{manim_server.url}/revideo/compose", json=body)
    assert response.status_code == 200, response.text
    composed = frames_of(await download(response.json()["video_url"], tmp_path / "video.mp4"))
    clip = frames_of(clip_path)
    middle = len(clip) // 2
    # The intro lasts one second, so the clip starts at frame fps.
    start = SMALL.fps + middle
    inside = min(difference(composed[i], clip[middle]) for i in range(start - 1, start + 2))
    intro = difference(composed[0], clip[middle])
    assert inside < intro / 2, (inside, intro)


async def test_without_manim_the_pyav_clip_is_the_fallback(tmp_path: Path) -> None:
    options = RenderOptions(width=160, height=96, fps=8, clip_seconds=2.0, manim=False)
    with start_reference_server(tmp_path / "media", options=options) as server:
        async with httpx.AsyncClient(timeout=60) as client:
            response = await client.post(
                f"{server.url}/manim/render", json={"content": QUESTIONS["plot"]}
            )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["renderer"] == "pyav"
    assert answer["fallback"] == "Manim is turned off"
    assert answer["scene_type"] == "plot"  # the PyAV clip draws the kind Manim would
    codec, decoded = probe(server.media_dir / answer["video_url"].rpartition("/")[2])
    assert codec == "h264" and abs(answer["duration"] - decoded) <= 0.1


@needs_manim
async def test_a_render_over_its_time_limit_is_a_timeout_and_is_killed(tmp_path: Path) -> None:
    media = tmp_path / "media"
    options = RenderOptions(width=320, height=180, fps=12, clip_seconds=2.0, manim_time_limit=0.3)
    with start_reference_server(media, options=options) as server:
        async with httpx.AsyncClient(timeout=60) as client:
            raw = await client.post(f"{server.url}/manim/render", json={"content": "Why?"})
            service = ManimRevideoService(
                f"{server.url}/manim", f"{server.url}/revideo", client=client
            )
            job = claimed({"question": "How do I plot y = x^2?", "animate": True})
            with pytest.raises(ServiceError) as info:
                await service.render(job, ProgressLog())
            health = await client.get(f"{server.url}/manim/health")
        assert not render_processes(media)
    assert raw.status_code == 504
    assert raw.json() == {"error": "manim render exceeded 0.3 s"}
    assert info.value.category is ErrorCategory.TIMEOUT
    assert (info.value.service, info.value.call, info.value.status_code) == (
        "manim", "POST manim /render", 504
    )
    assert info.value.category.retryable and not info.value.permanent
    assert health.status_code == 200
    assert not list(media.glob("*.mp4")) and not list(media.glob(".*.part"))


@needs_manim
# Manim imports pydub, which imports the deprecated audioop; renders never see this, as
# they import Manim in their own process.
@pytest.mark.filterwarnings("ignore:'audioop' is deprecated:DeprecationWarning")
def test_beats_share_the_frames_of_the_clip() -> None:
    from vq_plugins.reference.manim_scenes import split_frames

    assert split_frames(30, [1.0, 1.0, 2.0, 1.5]) == [6, 6, 10, 8]
    assert sum(split_frames(97, [1.0] * 6)) == 97
    # Fewer frames than beats: one each, and the clip runs a little longer.
    assert split_frames(4, [1.0] * 6) == [1] * 6
