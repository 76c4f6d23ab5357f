"""Tests for the local PyAV/Pillow renderer in vq_plugins.services.render_engine."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import av
import pytest
from PIL import Image

from vq_plugins.services.render_engine import (
    MAX_LENGTH,
    MIN_LENGTH,
    compose,
    probe,
    render_clip,
    render_explainer,
)


def top_level_boxes(path: Path) -> list[str]:
    data = path.read_bytes()
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        boxes.append(kind.decode("latin-1"))
        offset += size if size else len(data)
    return boxes


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_render_explainer_produces_h264_video_and_thumbnail(tmp_path: Path) -> None:
    calls: list[tuple[float, str]] = []
    result = render_explainer(
        tmp_path,
        "q1",
        "Why is the sky blue, and why are sunsets red instead?",
        body="Rayleigh scattering in one picture.",
        length=3,
        progress=lambda pct, stage: calls.append((pct, stage)),
    )
    assert result.video_path == tmp_path / "q1.mp4"
    assert result.thumbnail_path == tmp_path / "q1.jpg"
    codec, duration = probe(result.video_path)
    assert codec == "h264"
    # The spoken question outlasts 30% of three seconds, so the video runs longer.
    assert result.duration > 3
    assert abs(duration - result.duration) < 0.1
    assert result.narrated and result.captions_path == tmp_path / "q1.vtt"
    with Image.open(result.thumbnail_path) as thumb:
        thumb.verify()
    with Image.open(result.thumbnail_path) as thumb:
        assert thumb.size == (640, 360)
    percents = [pct for pct, _ in calls]
    assert percents == sorted(set(percents)), "percents must strictly increase"
    assert percents[-1] == 100
    # A "why" question gets the steps scene, and the progress stage says so.
    assert result.scene_type == "steps"
    assert {"title", "steps", "closing", "encoding"} <= {stage for _, stage in calls}
    assert leftovers(tmp_path) == []


def test_video_is_faststart_yuv420p(tmp_path: Path) -> None:
    result = render_clip(tmp_path, "clip", "A dot along a curve", length=2)
    boxes = top_level_boxes(result.video_path)
    assert boxes.index("moov") < boxes.index("mdat")
    with av.open(str(result.video_path)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"


@pytest.mark.parametrize(
    ("requested", "expected"),
    [(0.5, MIN_LENGTH), (MAX_LENGTH * 10, MAX_LENGTH), (5.0, 5.0)],
)
def test_length_is_clamped(tmp_path: Path, requested: float, expected: float) -> None:
    # Small frames at a low frame rate keep the two-minute case fast; silent, because a
    # spoken part may outlast its share of a short length.
    result = render_explainer(
        tmp_path, "clamped", "Clamp me", length=requested, width=128, height=72, fps=4,
        narrate=False,
    )
    assert not result.narrated and result.captions_path is None
    assert result.duration == pytest.approx(expected)
    assert probe(result.video_path)[1] == pytest.approx(expected, abs=0.3)


def test_compose_concatenates_cards_and_clip(tmp_path: Path) -> None:
    # A 12 fps clip composed at 24 fps also exercises the frame-rate resampling; silent,
    # the narration is a card of its own.
    clip = render_clip(tmp_path, "scene", "Growing bar", length=2, fps=12)
    stages: list[str] = []
    result = compose(
        tmp_path,
        "final",
        [
            {"type": "intro", "duration": 1},
            {"type": "manim", "path": clip.video_path},
            {"type": "manim", "path": None},
            {"type": "narration", "text": "The bar grows as the dot moves.", "duration": 1.5},
            {"type": "outro", "duration": 1},
        ],
        title="Composed explainer",
        progress=lambda _pct, stage: stages.append(stage),
        narrate=False,
    )
    codec, duration = probe(result.video_path)
    assert codec == "h264"
    assert duration == pytest.approx(1 + 2 + 1.5 + 1, abs=0.2)
    assert result.duration == pytest.approx(duration, abs=0.1)
    assert stages[:4] == ["intro", "manim", "narration", "outro"]
    assert stages[-1] == "done"
    with Image.open(result.thumbnail_path) as thumb:
        assert thumb.size == (640, 360)


def test_silent_narration_duration_defaults_to_reading_time(tmp_path: Path) -> None:
    segments: list[dict[str, object]] = [{"type": "narration", "text": "one two three"}]
    result = compose(tmp_path, "n", segments, width=128, height=72, fps=4, narrate=False)
    assert result.duration == pytest.approx(MIN_LENGTH)
    assert not result.narrated and result.captions_path is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"title": ""},
        {"title": "   "},
        {"length": 0},
        {"length": -3},
        {"length": math.nan},
        {"length": math.inf},
        {"width": 641},
        {"height": 0},
        {"fps": 0},
        {"name": ""},
        {"name": "../escape"},
        {"name": "a/b"},
        {"name": ".hidden"},
    ],
)
def test_render_explainer_rejects_invalid_input(tmp_path: Path, kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"out_dir": tmp_path, "name": "bad", "title": "Fine title"}
    args.update(kwargs)
    with pytest.raises(ValueError):
        render_explainer(**args)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "segments",
    [
        [],
        [{"type": "manim", "path": None}],
        [{"type": "credits"}],
        [{"type": "narration", "text": ""}],
        [{"type": "intro", "duration": -1}],
        [{"type": "outro", "duration": float("nan")}],
        [{"type": "manim", "path": "/nonexistent/clip.mp4"}],
        ["intro"],
    ],
)
def test_compose_rejects_invalid_segments(tmp_path: Path, segments: list[object]) -> None:
    with pytest.raises(ValueError):
        compose(tmp_path, "bad", segments)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_render_clip_rejects_empty_content(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="content"):
        render_clip(tmp_path, "c", " ", length=3)


def test_failed_render_leaves_no_files(tmp_path: Path) -> None:
    def explode(_pct: float, stage: str) -> None:
        if stage == "closing":
            raise RuntimeError("worker cancelled")

    with pytest.raises(RuntimeError):
        render_explainer(tmp_path, "boom", "Half done", length=2, progress=explode)
    assert list(tmp_path.iterdir()) == []


def test_probe_rejects_non_video(tmp_path: Path) -> None:
    path = tmp_path / "junk.mp4"
    path.write_bytes(b"not a video" * 20)
    with pytest.raises(ValueError):  # PyAV's InvalidDataError is a ValueError
        probe(path)
