"""The PyAV renderer's middle scene per kind of doubt (vq_plugins.services.scenes), checked
on decoded frames: each kind renders, the kinds look different, a diagram draws its key
terms, None follows classify, and the scene leaves the caption band alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.frames import difference, frame_at

from vq_plugins.services.captions import CaptionBurner
from vq_plugins.services.doubt_kinds import SCENE_KINDS, SceneKind, classify, step_lines
from vq_plugins.services.drawing import BG
from vq_plugins.services.render_engine import probe, render_clip, render_explainer
from vq_plugins.services.scenes import content_bottom, scene_frames
from vq_plugins.services.video_writer import Canvas

SIZE = {"width": 320, "height": 180, "fps": 8}
QUESTIONS: dict[SceneKind, str] = {
    "diagram": "What is a mitochondrion in a eukaryotic cell?",
    "plot": "Plot y = x^2",
    "steps": "How does photosynthesis work?",
}
# Decoded frames of one clip differ by well under 1 (compression noise); pictures that
# show different things differ by several.
DIFFERENT, SAME = 2.0, 0.5


def clip(tmp_path: Path, name: str, content: str, kind: SceneKind | None = None,
         **size: int) -> Path:
    result = render_clip(tmp_path, name, content, length=2, scene_type=kind, **(size or SIZE))
    assert result.scene_type == (kind or classify(content))
    return result.video_path


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_each_kind_renders_a_decodable_clip(tmp_path: Path, kind: SceneKind) -> None:
    path = clip(tmp_path, kind, QUESTIONS[kind], kind)
    codec, duration = probe(path)
    assert codec == "h264" and duration == pytest.approx(2.0, abs=0.1)
    frame = frame_at(path, 1.0)
    assert frame.shape == (180, 320, 3)
    assert difference(frame, np.array(BG, dtype=np.int16)) > DIFFERENT  # something is drawn


def test_the_three_kinds_look_different(tmp_path: Path) -> None:
    content = "Why is the sky blue at noon?"
    frames = {kind: frame_at(clip(tmp_path, kind, content, kind), 1.0) for kind in SCENE_KINDS}
    for one, other in (("diagram", "plot"), ("diagram", "steps"), ("plot", "steps")):
        assert difference(frames[one], frames[other]) > DIFFERENT, (one, other)


def test_two_diagram_questions_draw_their_own_key_terms(tmp_path: Path) -> None:
    one, two = "What is a mitochondrion in a cell?", "Rayleigh scattering in the atmosphere"
    assert classify(one) == classify(two) == "diagram"
    first, second = (frame_at(clip(tmp_path, f"d{i}", q), 1.0) for i, q in enumerate((one, two)))
    # Below the header, where the boxes of the key terms are.
    assert difference(first[60:140], second[60:140]) > DIFFERENT


def test_the_scene_moves_over_the_clip(tmp_path: Path) -> None:
    for kind in SCENE_KINDS:
        path = clip(tmp_path, kind, QUESTIONS[kind], kind)
        assert difference(frame_at(path, 0.3), frame_at(path, 1.8)) > DIFFERENT / 2, kind


def test_no_scene_type_follows_classify(tmp_path: Path) -> None:
    for kind, question in QUESTIONS.items():
        assert classify(question) == kind
        chosen = frame_at(clip(tmp_path, f"auto-{kind}", question), 1.0)
        forced = frame_at(clip(tmp_path, f"forced-{kind}", question, kind), 1.0)
        assert difference(chosen, forced) < SAME, kind
    explained = render_explainer(tmp_path, "e", QUESTIONS["plot"], length=2, narrate=False,
                                 **SIZE)
    assert explained.scene_type == "plot"


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_a_tiny_canvas_renders(tmp_path: Path, kind: SceneKind) -> None:
    tiny = {"width": 64, "height": 64, "fps": 4}
    codec, _ = probe(clip(tmp_path, kind, QUESTIONS[kind], kind, **tiny))
    assert codec == "h264"
    explained = render_explainer(tmp_path, f"e-{kind}", QUESTIONS[kind], length=2,
                                 explanation="A short explanation to caption.",
                                 scene_type=kind, **tiny)
    assert probe(explained.video_path)[0] == "h264"


def test_an_unknown_scene_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scene_type"):
        render_clip(tmp_path, "bad", "x", length=2, scene_type="3d", **SIZE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scene_type"):
        render_explainer(tmp_path, "bad", "x", length=2, scene_type="pie",  # type: ignore[arg-type]
                         **SIZE)
    assert not list(tmp_path.iterdir())


def band_top(canvas: Canvas) -> int:
    """The first row a two-line caption covers, found by burning one."""
    blank = Image.new("RGB", (canvas.width, canvas.height), BG)
    text = "a caption long enough to need two lines " * 4
    burnt = np.asarray(CaptionBurner(canvas).burn(blank, text)) != np.asarray(blank)
    return int(np.nonzero(burnt.any(axis=(1, 2)))[0].min())


@pytest.mark.parametrize("size", [(160, 90), (320, 180), (640, 360), (1280, 720)])
def test_scenes_stay_above_the_caption_band(size: tuple[int, int]) -> None:
    canvas = Canvas(*size, 24)
    assert content_bottom(canvas) < band_top(canvas)
    for question in [*QUESTIONS.values(), "sqrt x", "y = -2x + 3", "Gravity"]:
        for image in scene_frames(canvas, question, 12):
            drawn = (np.asarray(image).astype(np.int16) != np.array(BG)).any(axis=(1, 2))
            assert np.nonzero(drawn)[0].max() < band_top(canvas), (size, question)


def test_step_lines_name_the_key_terms_in_order() -> None:
    assert step_lines(["light", "leaves", "sugar"]) == [
        "Start with light", "Then bring in leaves", "Link sugar back to light"]
    assert len(step_lines([])) == 3 and len(step_lines(["water"])) == 3
