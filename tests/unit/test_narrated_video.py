"""Narrated renders, checked by decoding them: an AAC track that speaks, captions that
match it, and the same through the local renderer and the reference Revideo contract."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
import webvtt
from PIL import Image
from support.frames import frame_at
from support.services import ProgressLog, claimed, download, reference_server

from vq_core.errors import ServiceError
from vq_core.models import ErrorCategory
from vq_plugins.reference.reference_services import ReferenceServer
from vq_plugins.services.local_renderer import LocalRenderer
from vq_plugins.services.render_engine import MAX_LENGTH, compose, render_clip, render_explainer

QUESTION = "Why is the sky blue?"
EXPLANATION = ("Sunlight holds every colour. Air molecules scatter short blue waves far more "
               "than long red ones, so blue light reaches your eyes from every part of the sky.")
SMALL = {"width": 160, "height": 90, "fps": 10}
# int16 full scale is 1.0 after decoding; speech sits far above this, silence far below.
SPEAKING_RMS, SILENT_RMS = 0.02, 0.002


@dataclass
class Decoded:
    video_codec: str
    audio_codec: str
    video_seconds: float
    audio: np.ndarray
    rate: int

    def rms(self, start: float, end: float) -> float:
        part = self.audio[round(start * self.rate) : round(end * self.rate)]
        return float(np.sqrt(np.mean(part.astype(np.float64) ** 2)))

    @property
    def audio_seconds(self) -> float:
        return len(self.audio) / self.rate


def decode(path: Path) -> Decoded:
    with av.open(str(path)) as container:
        [video], [audio] = container.streams.video, container.streams.audio
        times = [f.time for f in container.decode(video)]
        container.seek(0)
        samples = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio)])
        return Decoded(video.codec_context.name, audio.codec_context.name,
                       max(times) + 1 / float(video.average_rate), samples, audio.rate)


def seconds(stamp: str) -> float:
    hours, minutes, rest = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(rest)


def cues(path: Path) -> list[tuple[float, float, str]]:
    return [(seconds(c.start), seconds(c.end), c.text) for c in webvtt.read(str(path))]


def words(text: str) -> str:
    return " ".join(text.split())


def test_explainer_speaks_question_explanation_and_thanks(tmp_path: Path) -> None:
    result = render_explainer(tmp_path, "sky", QUESTION, explanation=EXPLANATION, length=6,
                              **SMALL)
    assert result.narrated and result.captions_path == tmp_path / "sky.vtt"
    got = decode(result.video_path)
    assert (got.video_codec, got.audio_codec) == ("h264", "aac")
    assert got.video_seconds == pytest.approx(result.duration, abs=0.1)
    assert got.audio_seconds == pytest.approx(result.duration, abs=0.1)
    said = cues(result.captions_path)
    assert words(" ".join(text for *_, text in said)) == words(
        f"{QUESTION} {EXPLANATION} Thanks for watching")
    assert said[0][0] == pytest.approx(0.0, abs=0.05)
    # The explanation is longer than six seconds, so the picture waited for it.
    assert result.duration > said[-1][1] > 6
    for start, end, _ in said:
        assert got.rms(start, end) > SPEAKING_RMS
    # The speech ends where the last cue does: only the short pause follows.
    assert got.rms(said[-1][1] + 0.05, result.duration) < SILENT_RMS
    assert result.duration - said[-1][1] < 0.6


def test_diagram_without_explanation_is_silent(tmp_path: Path) -> None:
    result = render_explainer(tmp_path, "quiet", QUESTION, length=8, **SMALL)
    got = decode(result.video_path)
    (_, question_end, _), (thanks_start, _, text) = cues(result.captions_path)  # type: ignore[arg-type]
    assert text == "Thanks for watching"
    assert got.rms(0, question_end) > SPEAKING_RMS
    assert got.rms(question_end + 0.05, thanks_start - 0.05) < SILENT_RMS
    assert got.rms(thanks_start, thanks_start + 0.5) > SPEAKING_RMS
    assert result.duration == pytest.approx(8.0, abs=0.11)


def test_two_questions_look_different(tmp_path: Path) -> None:
    size = {"width": 320, "height": 180, "fps": 8}
    one = render_explainer(tmp_path, "one", "Why is the sky blue?", length=4, **size)
    two = render_explainer(tmp_path, "two", "How do magnets attract iron?", length=4, **size)
    difference = np.abs(frame_at(one.video_path, 0.5) - frame_at(two.video_path, 0.5)).mean()
    assert difference > 1.0


def test_faster_speech_makes_a_shorter_narration(tmp_path: Path) -> None:
    spoken = {}
    for speed in (1.0, 2.0):
        result = compose(tmp_path, f"s{int(speed)}", [{"type": "narration", "text": EXPLANATION}],
                         audio={"voice": "default", "speed": speed}, **SMALL)
        spoken[speed] = cues(result.captions_path)[-1][1]  # type: ignore[arg-type]
    assert spoken[2.0] / spoken[1.0] < 0.7


def test_total_is_clamped_to_max_length(tmp_path: Path) -> None:
    result = render_explainer(tmp_path, "long", QUESTION, explanation=" ".join([EXPLANATION] * 8),
                              length=MAX_LENGTH, width=64, height=64, fps=2)
    assert result.duration == pytest.approx(MAX_LENGTH)
    said = cues(result.captions_path)  # type: ignore[arg-type]
    assert said[-1][1] <= MAX_LENGTH  # cut speech takes its captions with it
    assert decode(result.video_path).audio_seconds == pytest.approx(MAX_LENGTH, abs=0.1)


def test_compose_narrates_over_the_clip_and_holds_its_last_frame(tmp_path: Path) -> None:
    clip = render_clip(tmp_path, "clip", "Growing bar", length=2, **SMALL)
    result = compose(
        tmp_path, "story",
        [{"type": "intro", "duration": 1}, {"type": "manim", "path": clip.video_path},
         {"type": "narration", "text": EXPLANATION}, {"type": "outro", "duration": 1}],
        title="Sky", audio={"voice": "female", "speed": 1.2}, **SMALL,
    )
    got = decode(result.video_path)
    said = cues(result.captions_path)  # type: ignore[arg-type]
    assert got.audio_seconds == pytest.approx(got.video_seconds, abs=0.1)
    assert words(" ".join(t for *_, t in said)) == words(EXPLANATION)
    # Spoken from the clip's first frame, after the silent one-second intro.
    assert said[0][0] == pytest.approx(1.0, abs=0.05)
    assert got.rms(0.05, 0.95) < SILENT_RMS
    assert got.rms(said[0][0], said[0][1]) > SPEAKING_RMS
    # The clip lasts two seconds; the narration keeps it (no card) on screen far longer.
    assert result.duration == pytest.approx(said[-1][1] + 0.4 + 1.0, abs=0.15)
    held = frame_at(result.video_path, said[-1][1] - 0.2)
    clip_end = frame_at(clip.video_path, 1.9)
    # Compare above the caption band, which differs by design.
    assert np.abs(held[:60] - clip_end[:60]).mean() < 3
    with Image.open(result.thumbnail_path) as thumb:
        picture = np.asarray(thumb.convert("RGB")).astype(np.int16)
    assert np.abs(picture - frame_at(clip.video_path, 1.0)).mean() < 6


def test_narration_without_a_clip_is_a_card_as_long_as_its_speech(tmp_path: Path) -> None:
    result = compose(tmp_path, "card", [{"type": "narration", "text": QUESTION}], **SMALL)
    [(start, end, text)] = cues(result.captions_path)  # type: ignore[arg-type]
    assert text == QUESTION and start == 0.0
    assert result.duration == pytest.approx(end + 0.4, abs=0.11)
    longer = compose(tmp_path, "long", [{"type": "narration", "text": QUESTION, "duration": 5}],
                     **SMALL)
    assert longer.duration == pytest.approx(5.0)


def test_unknown_voice_renders_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="calm"):
        compose(tmp_path, "x", [{"type": "narration", "text": "Hi"}], audio={"voice": "calm"})
    with pytest.raises(ValueError, match="speed"):
        render_explainer(tmp_path, "y", QUESTION, speed=3.0)
    assert list(tmp_path.iterdir()) == []


# -- through the services -----------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ReferenceServer]:
    with reference_server(tmp_path / "media") as running:
        yield running


async def test_local_renderer_returns_narrated_video_and_captions(
    server: ReferenceServer, tmp_path: Path
) -> None:
    service = LocalRenderer(server.media_dir, server.url, size=(160, 96), fps=8,
                            progress_interval=0.05)
    job = claimed({"question": QUESTION, "explanation": f"  {EXPLANATION}  ", "length": 5,
                   "voice": "male", "speed": 1.5})
    result = await service.render(job, ProgressLog())
    assert result["narrated"] is True and result["renderer"] == "local"
    assert result["captions_url"] == f"{server.url}/media/{job.id}.vtt"
    got = decode(await download(result["video_url"], tmp_path / "got.mp4"))
    assert (got.video_codec, got.audio_codec) == ("h264", "aac")
    assert got.audio_seconds == pytest.approx(result["duration"], abs=0.1)
    said = cues(await download(result["captions_url"], tmp_path / "got.vtt"))
    assert words(" ".join(t for *_, t in said)) == words(
        f"{QUESTION} {EXPLANATION} Thanks for watching")


async def test_local_renderer_refuses_an_unknown_voice(server: ReferenceServer) -> None:
    service = LocalRenderer(server.media_dir, server.url, size=(160, 96), fps=8)
    with pytest.raises(ServiceError) as info:
        await service.render(claimed({"question": QUESTION, "voice": "calm"}), ProgressLog())
    assert info.value.category is ErrorCategory.INVALID_INPUT
    assert "payload.voice" in str(info.value) and "calm" in str(info.value)
    assert list(server.media_dir.glob("*.mp4")) == []


async def test_reference_compose_speaks_and_captions(
    server: ReferenceServer, tmp_path: Path
) -> None:
    body = {"segments": [{"type": "intro", "duration": 1},
                         {"type": "narration", "text": QUESTION},
                         {"type": "narration", "text": EXPLANATION},
                         {"type": "outro", "duration": 1}],
            "audio": {"voice": "female", "speed": 1.0}}
    async with httpx.AsyncClient(timeout=60) as client:
        answer = await client.post(f"{server.url}/revideo/compose", json=body)
        bad_voice = await client.post(f"{server.url}/revideo/compose",
                                      json={**body, "audio": {"voice": "calm"}})
        bad_speed = await client.post(f"{server.url}/revideo/compose",
                                      json={**body, "audio": {"speed": 3}})
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["captions_url"].endswith(".vtt") and data["thumbnail_url"].endswith(".jpg")
    got = decode(await download(data["video_url"], tmp_path / "c.mp4"))
    assert got.audio_codec == "aac"
    assert got.video_seconds == pytest.approx(data["duration"], abs=0.1)
    assert got.audio_seconds == pytest.approx(data["duration"], abs=0.1)
    said = cues(await download(data["captions_url"], tmp_path / "c.vtt"))
    assert words(" ".join(t for *_, t in said)) == words(f"{QUESTION} {EXPLANATION}")
    assert said[0][0] == pytest.approx(1.0, abs=0.05)
    assert got.rms(said[0][0], said[0][1]) > SPEAKING_RMS
    assert bad_voice.status_code == 400 and "audio.voice" in bad_voice.json()["error"]
    assert bad_speed.status_code == 400 and "audio.speed" in bad_speed.json()["error"]
