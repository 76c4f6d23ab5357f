"""Narration requirements of issue 15 checked where they are used: voice and speed reach
the speech from the local renderer and /compose, captions are burnt into the picture,
/compose outputs one resolution and frame rate. (The Manim service without Manim:
tests/e2e/test_manim_absent.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from support.frames import difference, frame_at
from support.services import ProgressLog, claimed, download, reference_server
from test_narrated_video import EXPLANATION, QUESTION, SPEAKING_RMS, Decoded, cues, decode

from vq_plugins.reference.app import RenderOptions
from vq_plugins.reference.reference_services import ReferenceServer, start_reference_server
from vq_plugins.services.local_renderer import LocalRenderer
from vq_plugins.services.render_engine import render_clip, render_explainer

# espeak-ng's samples vary a little from run to run, so voices are told apart by pitch:
# its "female" voice speaks about an octave above "male" and "default" (~215 vs ~105 Hz).
HIGHER_VOICE = 1.5


def pitch(track: Decoded, frame: int = 1024) -> float:
    """Median fundamental frequency (Hz) of the voiced frames, by autocorrelation."""
    low, high = track.rate // 400, track.rate // 60  # 60..400 Hz
    found = []
    for start in range(0, len(track.audio) - frame, frame):
        part = track.audio[start : start + frame].astype(np.float64)
        if np.sqrt(np.mean(part**2)) < SPEAKING_RMS:
            continue
        part -= part.mean()
        corr = np.correlate(part, part, "full")[frame - 1 :]
        lag = low + int(np.argmax(corr[low:high]))
        if corr[lag] > 0.3 * corr[0]:
            found.append(track.rate / lag)
    assert len(found) > 20, "too little voiced speech to measure"
    return float(np.median(found))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ReferenceServer]:
    with reference_server(tmp_path / "media") as running:
        yield running


# -- 1. voice and speed are honoured by the callers ----------------------------------------


async def _local(
    server: ReferenceServer, tmp_path: Path, **audio: Any
) -> tuple[dict[str, Any], Decoded, Path]:
    """Render the question and explanation with ``audio`` (voice, speed) in the payload."""
    service = LocalRenderer(server.media_dir, server.url, size=(160, 96), fps=8,
                            progress_interval=0.05)
    job = claimed({"question": QUESTION, "explanation": EXPLANATION, "length": 5, **audio})
    result = await service.render(job, ProgressLog())
    got = decode(await download(result["video_url"], tmp_path / f"{job.id}.mp4"))
    return result, got, await download(result["captions_url"], tmp_path / f"{job.id}.vtt")


async def test_local_renderer_speaks_faster_at_a_higher_speed(
    server: ReferenceServer, tmp_path: Path
) -> None:
    normal, normal_got, normal_vtt = await _local(server, tmp_path, speed=1.0)
    fast, fast_got, fast_vtt = await _local(server, tmp_path, speed=2.0)
    # The explanation outlasts the five-second target, so the speech sets the length.
    assert normal["duration"] > 8
    assert fast["duration"] / normal["duration"] < 0.75
    assert fast_got.audio_seconds / normal_got.audio_seconds < 0.75
    assert cues(fast_vtt)[-1][1] / cues(normal_vtt)[-1][1] < 0.7


async def test_local_renderer_speaks_with_the_voice_asked_for(
    server: ReferenceServer, tmp_path: Path
) -> None:
    _, female, _ = await _local(server, tmp_path, voice="female")
    _, male, _ = await _local(server, tmp_path, voice="male")
    assert pitch(female) / pitch(male) > HIGHER_VOICE


async def test_reference_compose_speaks_with_the_voice_asked_for(
    server: ReferenceServer, tmp_path: Path
) -> None:
    tracks: dict[str, Decoded] = {}
    async with httpx.AsyncClient(timeout=60) as client:
        for voice in ("female", "male", "default"):
            body = {"segments": [{"type": "narration", "text": EXPLANATION}],
                    "audio": {"voice": voice, "speed": 1.0}}
            answer = await client.post(f"{server.url}/revideo/compose", json=body)
            assert answer.status_code == 200, answer.text
            video = await download(answer.json()["video_url"], tmp_path / f"{voice}.mp4")
            tracks[voice] = decode(video)
    assert pitch(tracks["female"]) / pitch(tracks["male"]) > HIGHER_VOICE
    assert pitch(tracks["female"]) / pitch(tracks["default"]) > HIGHER_VOICE


# -- 2. captions are burnt into the picture ------------------------------------------------


def test_captions_are_burnt_into_the_bottom_band(tmp_path: Path) -> None:
    spoken = render_explainer(tmp_path, "spoken", QUESTION, length=6, width=320, height=180,
                              fps=8)
    silent = render_explainer(tmp_path, "silent", QUESTION, length=6, width=320, height=180,
                              fps=8, narrate=False)
    assert spoken.narrated and not silent.narrated and silent.captions_path is None
    (start, end, text), *_ = cues(spoken.captions_path)  # type: ignore[arg-type]
    assert text == QUESTION
    # The title card is still on screen in both; only the spoken one has a caption.
    at = (start + end) / 2
    with_caption, without = frame_at(spoken.video_path, at), frame_at(silent.video_path, at)
    band, above = slice(-36, None), slice(None, 180 - 48)
    assert difference(with_caption[band], without[band]) > 5.0
    assert difference(with_caption[above], without[above]) < 0.5


# -- 3. /compose outputs one resolution and frame rate -------------------------------------


async def test_compose_scales_and_retimes_a_clip_to_its_output(tmp_path: Path) -> None:
    media = tmp_path / "media"
    clip = render_clip(media, "clip", "Growing bar", length=2, width=160, height=90, fps=10)
    with av.open(str(clip.video_path)) as container:
        [stream] = container.streams.video
        assert (stream.width, stream.height) == (160, 90) and stream.average_rate == 10
    options = RenderOptions(width=320, height=180, fps=24, clip_seconds=2.0, max_length=30.0,
                            manim=False)
    with start_reference_server(media, options=options) as server:
        body = {"segments": [{"type": "intro", "duration": 1},
                             {"type": "manim", "url": f"{server.url}/media/clip.mp4"},
                             {"type": "outro", "duration": 1}]}
        async with httpx.AsyncClient(timeout=60) as client:
            answer = await client.post(f"{server.url}/revideo/compose", json=body)
        assert answer.status_code == 200, answer.text
        data = answer.json()
        video = await download(data["video_url"], tmp_path / "out.mp4")
    with av.open(str(video)) as container:
        [stream] = container.streams.video
        assert (stream.width, stream.height) == (320, 180)
        assert stream.average_rate == 24
        frames = sum(1 for _ in container.decode(stream))
    assert data["duration"] == pytest.approx(4.0, abs=0.1)
    assert abs(frames - data["duration"] * 24) <= 1
    # Retimed, not merely padded: one second into the clip (2 s into the output) the bar
    # is still growing towards its last frame, as much as in the clip itself.
    source = difference(frame_at(clip.video_path, 1.0), frame_at(clip.video_path, 1.9))
    assert source > 0.3
    moving = difference(frame_at(video, 2.0), frame_at(video, 2.9))
    assert moving == pytest.approx(source, abs=0.2)
