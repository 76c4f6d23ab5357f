"""The reference Manim scenes: a labelled diagram, a function plot, a list of steps.

Imported only in the render subprocess (it imports Manim, which is heavy)::

    python -m vq_plugins.reference.manim_scenes --kind plot --content "Plot y = x^2" \
        --out clip.mp4 --width 640 --height 360 --fps 24 --seconds 4

Text is drawn with Pango (``Text``), never LaTeX, so no TeX installation is needed. The
scene lasts ``--seconds`` (to the frame, unless that is fewer frames than it has beats);
the MP4 lands at ``--out`` atomically, and Manim's own files go to a temporary folder.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from manim import (
    BLUE,
    BLUE_E,
    DOWN,
    GREY_B,
    LEFT,
    RIGHT,
    UP,
    WHITE,
    YELLOW,
    Arrow,
    Axes,
    Circle,
    Circumscribe,
    Create,
    Dot,
    FadeIn,
    GrowArrow,
    GrowFromCenter,
    Indicate,
    LaggedStart,
    MoveAlongPath,
    RoundedRectangle,
    Scene,
    Text,
    VGroup,
    Write,
    config,
)

from vq_plugins.services.doubt_kinds import (
    DEFAULT_FUNCTION,
    SCENE_KINDS,
    TERM_CHARS,
    FunctionSpec,
    SceneKind,
    key_terms,
    named_function,
    nice_step,
    shorten,
    step_lines,
)

TITLE_CHARS = 60


def split_frames(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` frames shared by the beats in proportion to ``weights``, at least one
    each (so the sum is ``max(total, len(weights))``)."""
    count = len(weights)
    total = max(total, count)
    spare = total - count
    shares = [spare * w / sum(weights) for w in weights]
    frames = [1 + math.floor(s) for s in shares]
    # Largest remainders get the frames rounding left over.
    for index in sorted(range(count), key=lambda i: shares[i] - math.floor(shares[i]),
                        reverse=True)[: total - sum(frames)]:
        frames[index] += 1
    return frames




def _fit(mobject: Any, max_width: float) -> Any:
    if mobject.width > max_width:
        mobject.scale_to_fit_width(max_width)
    return mobject




class _Beats:
    """Plays a scene's animations so that together they last the planned frames."""

    def __init__(self, scene: Scene, seconds: float, fps: int, weights: Sequence[float]) -> None:
        self._scene, self._fps = scene, fps
        self._frames = iter(split_frames(round(seconds * fps), weights))

    def play(self, *animations: Any) -> None:
        """Play the next beat. Manim draws a frame at every multiple of 1/fps below the
        run time, so half a frame short of ``n`` frames gives exactly ``n`` (but it will not
        play less than one frame's time, which is exactly one frame)."""
        frames = next(self._frames)
        self._scene.play(*animations, run_time=max(frames - 0.5, 1) / self._fps)


class DoubtScene(Scene):
    """A scene built from a doubt's text; ``kind`` says which one."""

    def __init__(self, kind: SceneKind, content: str, seconds: float, fps: int) -> None:
        super().__init__()
        self.kind, self.content, self.seconds, self.fps = kind, content, seconds, fps

    def construct(self) -> None:
        """Draw the scene of ``self.kind``."""
        builders: dict[SceneKind, Callable[[], None]] = {
            "diagram": self._diagram,
            "plot": self._plot,
            "steps": self._steps,
        }
        builders[self.kind]()

    def _beats(self, weights: Sequence[float]) -> _Beats:
        return _Beats(self, self.seconds, self.fps, weights)

    def _title(self, text: str, size: int = 30) -> Any:
        title = Text(shorten(text, TITLE_CHARS), font_size=size, color=WHITE)
        return _fit(title, config.frame_width - 1).to_edge(UP, buff=0.4)

    def _diagram(self) -> None:
        """The central term in a box, the others around it, arrows from it to them."""
        terms = [shorten(t, TERM_CHARS) for t in key_terms(self.content, 5)]
        center_term, others = (terms[0], terms[1:]) if terms else (shorten(self.content, 24), [])
        title = self._title(self.content)
        label = _fit(Text(center_term, font_size=34, color=WHITE), 4.2)
        box = RoundedRectangle(corner_radius=0.25, width=label.width + 0.8,
                               height=label.height + 0.6, color=BLUE,
                               fill_color=BLUE_E, fill_opacity=0.9)
        center = VGroup(box, label).move_to(DOWN * 0.4)
        arrows: list[Arrow] = []
        labels: list[Text] = []
        for index, term in enumerate(others):
            angle = math.pi / 4 + 2 * math.pi * index / len(others)
            spot = center.get_center() + 4.3 * math.cos(angle) * RIGHT + 2.0 * math.sin(angle) * UP
            text = _fit(Text(term, font_size=26, color=YELLOW), 3.2).move_to(spot)
            edge = center.get_critical_point((math.cos(angle), math.sin(angle), 0.0))
            arrows.append(Arrow(edge, text.get_center(), buff=0.35, color=GREY_B))
            labels.append(text)
        beats = self._beats([1.0, 1.0, 2.0, 1.5])
        beats.play(Write(title))
        beats.play(GrowFromCenter(center))
        if others:
            beats.play(LaggedStart(*(GrowArrow(a) for a in arrows), lag_ratio=0.2),
                       LaggedStart(*(FadeIn(t, shift=0.2 * UP) for t in labels), lag_ratio=0.2))
        else:
            beats.play(Circumscribe(center, color=YELLOW))
        beats.play(Indicate(center, color=YELLOW, scale_factor=1.1))

    def _plot(self) -> None:
        """Axes, the named function's curve, a dot running along it, its name on top."""
        spec: FunctionSpec = named_function(self.content) or DEFAULT_FUNCTION
        (x_low, x_high), (y_low, y_high) = spec.x_range, spec.y_range
        axes = Axes(
            x_range=[x_low, x_high, nice_step(x_high - x_low)],
            y_range=[y_low, y_high, nice_step(y_high - y_low)],
            x_length=config.frame_width - 2.0,
            y_length=config.frame_height - 2.6,
            tips=False,
            axis_config={"color": GREY_B},
        ).move_to(DOWN * 0.5)
        curve = axes.plot(spec.func, x_range=[x_low, x_high], color=BLUE, stroke_width=5)
        name = self._title(spec.label, size=36).set_color(YELLOW)
        dot = Dot(curve.get_start(), color=YELLOW, radius=0.12)
        beats = self._beats([1.0, 1.0, 1.5, 2.0])
        beats.play(Write(name))
        beats.play(Create(axes))
        beats.play(Create(curve), FadeIn(dot))
        beats.play(MoveAlongPath(dot, curve))

    def _steps(self) -> None:
        """Numbered steps from the question's key terms, appearing one by one."""
        lines = step_lines(key_terms(self.content, 4))
        title = self._title(self.content)
        rows = VGroup()
        for number, line in enumerate(lines, start=1):
            badge = Circle(radius=0.3, color=BLUE, fill_color=BLUE_E, fill_opacity=1)
            digit = Text(str(number), font_size=26, color=WHITE).move_to(badge)
            text = _fit(Text(line, font_size=28, color=WHITE), config.frame_width - 3.5)
            rows.add(VGroup(VGroup(badge, digit), text).arrange(RIGHT, buff=0.35))
        rows.arrange(DOWN, aligned_edge=LEFT, buff=0.45)
        _fit(rows, config.frame_width - 1.5)
        if rows.height > config.frame_height - 2.2:
            rows.scale_to_fit_height(config.frame_height - 2.2)
        rows.next_to(title, DOWN, buff=0.5).set_x(0)
        beats = self._beats([1.0] + [1.0] * len(rows) + [1.0])
        beats.play(Write(title))
        for row in rows:
            beats.play(FadeIn(row, shift=0.3 * RIGHT))
        beats.play(Indicate(rows[-1], color=YELLOW, scale_factor=1.05))




def render(kind: SceneKind, content: str, out: Path, *, width: int, height: int, fps: int,
           seconds: float, media_dir: Path | None = None) -> Path:
    """Render the scene of ``kind`` for ``content`` and move the MP4 to ``out`` atomically."""
    with tempfile.TemporaryDirectory(prefix="vq-manim-") as scratch:
        config.pixel_width, config.pixel_height, config.frame_rate = width, height, fps
        config.frame_width = config.frame_height * width / height
        config.media_dir = str(media_dir or scratch)
        config.output_file = "clip"
        config.disable_caching = True
        config.verbosity = "WARNING"
        config.progress_bar = "none"
        scene = DoubtScene(kind, content, seconds, fps)
        scene.render()
        movie = Path(scene.renderer.file_writer.movie_file_path)
        part = out.with_name(f".{out.name}.{os.getpid()}.part")
        try:
            shutil.copyfile(movie, part)
            # A web server running as another user must be able to read it.
            part.chmod(0o644)
            os.replace(part, out)
        finally:
            part.unlink(missing_ok=True)
    return out


def _even(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value)
        if not low <= number <= high or number % 2:
            raise argparse.ArgumentTypeError(f"must be an even integer in [{low}, {high}]")
        return number

    return parse


def _in_range(cast: Callable[[str], Any], low: float, high: float) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        number = cast(value)
        if not (math.isfinite(number) and low <= number <= high):
            raise argparse.ArgumentTypeError(f"must be in [{low}, {high}]")
        return number

    return parse


def _content(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """The command line of the render subprocess; exit status 2 for bad arguments."""
    parser = argparse.ArgumentParser(prog="python -m vq_plugins.reference.manim_scenes")
    parser.add_argument("--kind", required=True, choices=SCENE_KINDS)
    parser.add_argument("--content", required=True, type=_content)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--width", type=_even(64, 3840), default=640)
    parser.add_argument("--height", type=_even(64, 2160), default=360)
    parser.add_argument("--fps", type=_in_range(int, 1, 120), default=24)
    parser.add_argument("--seconds", type=_in_range(float, 0.5, 600), default=4.0)
    parser.add_argument("--media-dir", type=Path, default=None,
                        help="Manim's own files (default: a temporary folder).")
    args = parser.parse_args(argv)
    if not args.out.parent.is_dir():
        parser.error(f"--out: folder {args.out.parent} does not exist")
    render(args.kind, args.content, args.out, width=args.width, height=args.height,
           fps=args.fps, seconds=args.seconds, media_dir=args.media_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
