"""A pure, synchronous local video renderer: Pillow draws frames, PyAV encodes H.264.

It stands in for Manim/Revideo so the pipeline runs without a network; it knows no queues.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
from av.video.frame import VideoFrame
from PIL import Image, ImageDraw, ImageFont

MIN_LENGTH = 2.0
MAX_LENGTH = 120.0

Progress = Callable[[float, str], None]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

_BG, _FG, _MUTED = (18, 24, 38), (236, 240, 246), (120, 132, 156)
_ACCENT, _ACCENT2 = (255, 176, 59), (84, 190, 255)
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# ultrafast keeps an 8 s clip around half a CPU second; crf 23 is x264's visually-fine default.
_X264_OPTIONS = {"preset": "ultrafast", "crf": "23"}


@dataclass(frozen=True)
class RenderedVideo:
    """Paths of a finished render and its encoded duration in seconds."""

    video_path: Path
    thumbnail_path: Path
    duration: float


@dataclass(frozen=True)
class _Canvas:
    width: int
    height: int
    fps: int

    def __post_init__(self) -> None:
        # yuv420p subsamples chroma 2x2, so odd sizes cannot be encoded.
        for label, value, high in (("width", self.width, 3840), ("height", self.height, 2160)):
            if not 64 <= value <= high or value % 2:
                raise ValueError(f"{label} must be an even integer in [64, {high}], got {value}")
        if not 1 <= self.fps <= 120:
            raise ValueError(f"fps must be in [1, 120], got {self.fps}")

    def frames(self, seconds: float) -> int:
        return max(1, round(seconds * self.fps))


class _Reporter:
    """Forwards strictly increasing percentages so callers can draw a monotonic bar."""

    def __init__(self, callback: Progress | None, total_steps: int) -> None:
        self._callback, self._total, self._last = callback, max(1, total_steps), -1.0

    def step(self, stage: str, done: int) -> None:
        # The last 5% is reserved for flushing the encoder and moving the moov atom.
        self.report(95.0 * min(done, self._total) / self._total, stage)

    def report(self, percent: float, stage: str) -> None:
        if self._callback is not None and percent > self._last:
            self._last = percent
            self._callback(round(percent, 1), stage)


class _VideoWriter:
    """Streams frames into an H.264 MP4; the encoder is flushed only if the block succeeds."""

    def __init__(self, path: Path, canvas: _Canvas) -> None:
        self.canvas, self.frames, self._time_base = canvas, 0, Fraction(1, canvas.fps)
        self._container = av.open(str(path), mode="w", format="mp4",
                                  container_options={"movflags": "+faststart"})
        self._stream = self._container.add_stream("libx264", rate=canvas.fps,
                                                  options=dict(_X264_OPTIONS))
        self._stream.width, self._stream.height = canvas.width, canvas.height
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.time_base = self._time_base

    def __enter__(self) -> _VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self._container.mux(self._stream.encode(None))
            self._container.close()
        else:
            with suppress(Exception):
                self._container.close()

    def add_image(self, image: Image.Image, count: int = 1) -> None:
        rgb = VideoFrame.from_ndarray(np.asarray(image.convert("RGB")), format="rgb24")
        # Converting once and re-sending the same frame is what makes static cards cheap.
        self.add_frame(rgb.reformat(format="yuv420p"), count)

    def add_frame(self, frame: VideoFrame, count: int = 1) -> None:
        for _ in range(count):
            frame.pts, frame.time_base = self.frames, self._time_base
            self._container.mux(self._stream.encode(frame))
            self.frames += 1


@contextmanager
def _atomic(final: Path) -> Iterator[Path]:
    """Yield a temp path beside ``final`` that replaces it only if the block succeeds."""
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp makes 0600 files; a web server running as another user must read them.
        tmp.chmod(0o644)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


Scene = Callable[[_VideoWriter, _Reporter], Image.Image]


def _render(out_dir: Path, name: str, canvas: _Canvas, reporter: _Reporter,
            scene: Scene) -> RenderedVideo:
    """Encode ``scene`` into out_dir/{name}.mp4 and save the image it returns as the .jpg."""
    # A strict name keeps renders inside out_dir and away from our own ".part" temp files.
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"name must match {_NAME_RE.pattern!r}, got {name!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    video, thumb = out_dir / f"{name}.mp4", out_dir / f"{name}.jpg"
    with _atomic(video) as tmp, _VideoWriter(tmp, canvas) as writer:
        image = scene(writer, reporter)
        reporter.report(95.0, "encoding")
        # The thumbnail lands first so whoever sees the video can rely on it existing.
        with _atomic(thumb) as tmp_thumb:
            image.convert("RGB").save(tmp_thumb, format="JPEG", quality=85)
    reporter.report(100.0, "done")
    return RenderedVideo(video, thumb, writer.frames / canvas.fps)


def _text(value: object, label: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{label} must be a non-empty string")
    return " ".join(value.split())


def _seconds(value: object, label: str) -> float:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{label} must be a positive finite number of seconds, got {value!r}")
    return float(number)


@lru_cache(maxsize=32)
def _font(size: int) -> Font:
    return ImageFont.load_default(size=size)


def _wrap(text: str, font: Font, max_width: float, max_lines: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= max_width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], lines[max_lines - 1] + " …"]
    for i, line in enumerate(lines):
        # A single overlong word would otherwise run off the frame.
        while len(line) > 1 and font.getlength(line) > max_width:
            line = lines[i] = line[:-2] + "…"
    return lines


def _draw_lines(draw: ImageDraw.ImageDraw, lines: list[str], font: Font, top: float,
                fill: tuple[int, int, int]) -> float:
    step = font.size * 1.25 if isinstance(font, ImageFont.FreeTypeFont) else 14
    for line in lines:
        draw.text((draw.im.size[0] / 2, top), line, font=font, fill=fill, anchor="ma")
        top += step
    return top


def _card(canvas: _Canvas, heading: str, body: str | None = None,
          kicker: str | None = None) -> Image.Image:
    w, h = canvas.width, canvas.height
    image = Image.new("RGB", (w, h), _BG)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, h - h // 40, w, h), fill=_ACCENT)
    big, small = _font(max(12, h // 11)), _font(max(10, h // 20))
    top = h * 0.18
    if kicker:
        top = _draw_lines(draw, [kicker.upper()], small, top, _ACCENT) + h * 0.03
    top = _draw_lines(draw, _wrap(heading, big, w * 0.85, 4), big, top, _FG)
    if body:
        _draw_lines(draw, _wrap(body, small, w * 0.8, 4), small, top + h * 0.04, _MUTED)
    return image


def _curve_point(canvas: _Canvas, t: float) -> tuple[float, float]:
    x0, x1 = canvas.width * 0.08, canvas.width * 0.68
    return x0 + (x1 - x0) * t, canvas.height * (0.55 - 0.22 * math.sin(t * 2 * math.pi))


def _diagram_frame(base: Image.Image, canvas: _Canvas, t: float) -> Image.Image:
    w, h = canvas.width, canvas.height
    image = base.copy()
    draw = ImageDraw.Draw(image)
    steps = max(1, int(120 * t))
    draw.line([_curve_point(canvas, t * i / steps) for i in range(steps + 1)],
              fill=_ACCENT2, width=3)
    x, y = _curve_point(canvas, t)
    r = max(4, h // 45)
    draw.ellipse((x - r, y - r, x + r, y + r), fill=_ACCENT)
    bar_top = h * 0.85 - 4 - (h * 0.55 - 8) * t
    draw.rectangle((w * 0.78 + 4, bar_top, w * 0.9 - 4, h * 0.85 - 4), fill=_ACCENT2)
    # The arrow ties the moving dot to the bar so the two read as one quantity.
    tip = (w * 0.77, bar_top)
    draw.line((x + r, y, *tip), fill=_ACCENT, width=2)
    draw.polygon([tip, (tip[0] - 10, tip[1] - 5), (tip[0] - 10, tip[1] + 5)], fill=_ACCENT)
    return image


def _write_diagram(writer: _VideoWriter, caption: str, frames: int) -> Image.Image:
    """Encode an animated diagram and return its middle frame for use as a thumbnail."""
    w, h = writer.canvas.width, writer.canvas.height
    # Everything static is drawn once here and copied for each frame.
    base = middle = Image.new("RGB", (w, h), _BG)
    draw, font = ImageDraw.Draw(base), _font(max(10, h // 18))
    _draw_lines(draw, _wrap(caption, font, w * 0.9, 2), font, h * 0.05, _FG)
    draw.line((w * 0.08, h * 0.55, w * 0.7, h * 0.55), fill=_MUTED, width=1)
    draw.line([_curve_point(writer.canvas, i / 120) for i in range(121)], fill=_MUTED, width=2)
    draw.rectangle((w * 0.78, h * 0.3, w * 0.9, h * 0.85), outline=_MUTED, width=2)
    for i in range(frames):
        image = _diagram_frame(base, writer.canvas, i / max(1, frames - 1))
        writer.add_image(image)
        middle = image if i == frames // 2 else middle
    return middle


def _frames_for(length: float, canvas: _Canvas) -> int:
    return canvas.frames(min(MAX_LENGTH, max(MIN_LENGTH, _seconds(length, "length"))))


def render_explainer(out_dir: Path, name: str, title: str, body: str | None = None,
                     length: float = 8.0, width: int = 640, height: int = 360, fps: int = 24,
                     progress: Progress | None = None) -> RenderedVideo:
    """Render out_dir/{name}.mp4 (H.264, yuv420p, faststart) and out_dir/{name}.jpg.

    The video is a title card with the wrapped question, an animated diagram and a closing
    card. ``length`` is clamped to [MIN_LENGTH, MAX_LENGTH]; ``progress(percent, stage)`` is
    called with strictly increasing percents ending at 100.
    """
    canvas = _Canvas(width, height, fps)
    title = _text(title, "title")
    body = _text(body, "body") if body is not None and body.strip() else None
    total = _frames_for(length, canvas)
    n_title, n_closing = round(total * 0.3), round(total * 0.2)

    def scene(writer: _VideoWriter, reporter: _Reporter) -> Image.Image:
        reporter.step("title", 0)
        thumb = _card(canvas, title, body, kicker="Question")
        writer.add_image(thumb, n_title)
        reporter.step("diagram", writer.frames)
        _write_diagram(writer, title, total - n_title - n_closing)
        reporter.step("closing", writer.frames)
        writer.add_image(_card(canvas, "Thanks for watching", title, kicker="Recap"), n_closing)
        return thumb

    return _render(out_dir, name, canvas, _Reporter(progress, total), scene)


def render_clip(out_dir: Path, name: str, content: str, length: float, width: int = 640,
                height: int = 360, fps: int = 24,
                progress: Progress | None = None) -> RenderedVideo:
    """Render a diagram-only clip captioned with ``content`` (a stand-in for a Manim scene)."""
    canvas = _Canvas(width, height, fps)
    content = _text(content, "content")
    total = _frames_for(length, canvas)

    def scene(writer: _VideoWriter, reporter: _Reporter) -> Image.Image:
        reporter.step("diagram", 0)
        return _write_diagram(writer, content, total)

    return _render(out_dir, name, canvas, _Reporter(progress, total), scene)


@dataclass(frozen=True)
class _Segment:
    kind: str
    seconds: float = 0.0
    text: str = ""
    path: Path | None = None


def _parse_segment(raw: object, title: str) -> _Segment | None:
    if not isinstance(raw, Mapping):
        raise ValueError(f"each segment must be a mapping, got {raw!r}")
    kind, path = raw.get("type"), raw.get("path")
    if kind == "manim":
        if path is not None and not (isinstance(path, str | Path) and Path(path).is_file()):
            raise ValueError(f"manim segment path is not an existing file: {path!r}")
        return None if path is None else _Segment("manim", path=Path(path))
    if kind not in ("intro", "narration", "outro"):
        raise ValueError(f"unknown segment type {kind!r}")
    text = _text(raw.get("text", {"intro": title, "outro": "Thanks for watching"}.get(kind)),
                 f"{kind} text")
    # Narration stays up long enough to read, at roughly 2.5 words a second.
    default = min(10.0, max(2.0, len(text.split()) / 2.5)) if kind == "narration" else 3.0
    seconds = _seconds(raw.get("duration", default), f"{kind} duration")
    if seconds > MAX_LENGTH:
        raise ValueError(f"{kind} duration must be at most {MAX_LENGTH} s, got {seconds}")
    return _Segment(kind, seconds, text)


def _clip_frames(path: Path, canvas: _Canvas) -> Iterator[VideoFrame]:
    """Decode a clip, resampled to the canvas size and frame rate."""
    emitted, start, last = 0, 0.0, 0.0
    held: VideoFrame | None = None
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"manim clip has no video stream: {path}")
        stream = container.streams.video[0]
        step = 1 / float(stream.average_rate or stream.guessed_rate or canvas.fps)
        for index, frame in enumerate(container.decode(stream)):
            last = frame.time if frame.time is not None else index * step
            start = last if index == 0 else start
            # Each held frame fills every output slot that begins before the next one.
            while held is not None and emitted < round((last - start) * canvas.fps):
                yield held
                emitted += 1
            held = frame.reformat(width=canvas.width, height=canvas.height, format="yuv420p")
    if held is None:
        raise ValueError(f"manim clip has no video frames: {path}")
    while emitted < max(1, round((last - start + step) * canvas.fps)):
        yield held
        emitted += 1


def compose(out_dir: Path, name: str, segments: Sequence[Mapping[str, object]],
            title: str = "Coming up", width: int = 640, height: int = 360, fps: int = 24,
            progress: Progress | None = None) -> RenderedVideo:
    """Concatenate intro/outro/narration cards and decoded manim clips (a Revideo stand-in).

    Segments look like ``{"type": "intro", "duration": 5}``, ``{"type": "manim", "path": p}``
    (skipped when ``path`` is None), ``{"type": "narration", "text": "..."}`` and
    ``{"type": "outro", "duration": 3}``; cards accept an optional ``text``.
    """
    canvas = _Canvas(width, height, fps)
    title = _text(title, "title")
    plan = [seg for raw in segments if (seg := _parse_segment(raw, title)) is not None]
    if not plan:
        raise ValueError("segments contain nothing to render")

    def scene(writer: _VideoWriter, reporter: _Reporter) -> Image.Image:
        thumb: Image.Image | None = None
        for index, seg in enumerate(plan):
            reporter.step(seg.kind, index)
            if seg.path is not None:
                for frame in _clip_frames(seg.path, canvas):
                    writer.add_frame(frame)
            else:
                card = _card(canvas, seg.text, kicker=seg.kind)
                thumb = thumb or card
                writer.add_image(card, canvas.frames(seg.seconds))
        return thumb or _card(canvas, title)

    return _render(out_dir, name, canvas, _Reporter(progress, len(plan)), scene)


def probe(path: Path) -> tuple[str, float]:
    """Return (codec name, duration in seconds) of the first video stream by decoding it."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"no video stream in {path}")
        stream = container.streams.video[0]
        times = [f.time for f in container.decode(stream) if f.time is not None]
        rate = stream.average_rate or stream.guessed_rate
    if not times or not rate:
        raise ValueError(f"no decodable video frames in {path}")
    # The last frame stays on screen for one frame interval after its timestamp.
    return stream.codec_context.name, max(times) - min(times) + 1 / float(rate)
