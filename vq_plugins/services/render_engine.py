"""A pure, synchronous local video renderer: Pillow draws frames, espeak-ng speaks, PyAV
encodes H.264 with an AAC narration track, and a WebVTT file carries the captions.

It stands in for Manim/Revideo so the pipeline runs without a network; it knows no queues.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import av
from av.video.frame import VideoFrame
from PIL import Image

from vq_plugins.services.captions import CaptionBurner, Cue, clip_cues, cue_at, webvtt
from vq_plugins.services.doubt_kinds import SceneKind
from vq_plugins.services.drawing import card
from vq_plugins.services.narration import Narration, Narrator
from vq_plugins.services.scenes import resolve_kind, scene_frames
from vq_plugins.services.video_writer import Canvas, Progress, Reporter, VideoWriter, atomic

__all__ = ["MAX_LENGTH", "MIN_LENGTH", "Progress", "RenderedVideo", "compose", "probe",
           "render_clip", "render_explainer"]

MIN_LENGTH = 2.0
MAX_LENGTH = 120.0
# A narrated part outlasts its speech by this much, so sentences do not run together.
PAUSE_S = 0.4
THANKS = "Thanks for watching"

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class RenderedVideo:
    """Paths of a finished render, its encoded duration in seconds, and whether it speaks.

    ``captions_path`` is the WebVTT file beside the video, None when nothing was said;
    ``scene_type`` the kind of animated scene it shows (None for a composition).
    """

    video_path: Path
    thumbnail_path: Path
    duration: float
    captions_path: Path | None = None
    narrated: bool = False
    scene_type: SceneKind | None = None


Picture = Image.Image | VideoFrame


def _image(picture: Picture) -> Image.Image:
    if isinstance(picture, VideoFrame):
        image: Image.Image = picture.to_image()  # type: ignore[no-untyped-call]
        return image
    return picture


class _Studio:
    """One render in progress: the writer, the caption burner and the cues said so far."""

    def __init__(self, writer: VideoWriter, reporter: Reporter) -> None:
        self.writer, self.reporter = writer, reporter
        self.canvas = writer.canvas
        self.burner = CaptionBurner(writer.canvas)
        self.cues: list[Cue] = []

    def part(self, pictures: Iterable[Picture], narration: Narration | None = None,
             least: int = 1, most: int | None = None) -> None:
        """Write ``pictures`` (at most ``most`` frames; the last one held up to ``least``)
        with ``narration`` playing from the first frame and its captions burnt in."""
        fps, writer = self.canvas.fps, self.writer
        cues: list[Cue] = []
        if narration is not None:
            writer.play(narration.samples)
            cues = list(narration.cues) if most is None else clip_cues(narration.cues, most / fps)
            self.cues.extend(cue.shifted(writer.seconds) for cue in cues)
        elif writer.narrated:
            writer.stop()  # what an earlier part left unsaid is dropped
        last: Picture | None = None
        # Holding the picture itself (not its id, which a freed picture's successor may
        # reuse) is what makes "the same still under the same caption" safe to detect.
        encoded: tuple[Picture, str | None, VideoFrame] | None = None
        source, index = iter(pictures), 0
        while most is None or index < most:
            picture = next(source, None)
            if picture is None and index >= least:
                break
            last = picture or last
            if last is None:
                raise ValueError("a part has no pictures")
            cue = cue_at(cues, index / fps)
            text = cue.text if cue is not None else None
            index += 1
            if encoded is not None and encoded[0] is last and encoded[1] == text:
                writer.add_frame(encoded[2])  # a still picture under the same caption
                continue
            if text is None and isinstance(last, VideoFrame):
                frame = last
            else:
                image = _image(last)
                frame = writer.frame_of(self.burner.burn(image, text))
            encoded = (last, text, frame)
            writer.add_frame(frame)


class _Keep:
    """Passes pictures through and keeps the one at ``index`` (a thumbnail)."""

    def __init__(self, pictures: Iterable[Picture], index: int) -> None:
        self._pictures, self._index = pictures, index
        self.kept: Picture | None = None

    def __iter__(self) -> Iterator[Picture]:
        for i, picture in enumerate(self._pictures):
            if i == self._index or self.kept is None:
                self.kept = picture
            yield picture

    def image(self) -> Image.Image | None:
        """The kept picture as an image."""
        return None if self.kept is None else _image(self.kept)


Scene = Callable[[_Studio], Image.Image]


def _render(out_dir: Path, name: str, canvas: Canvas, reporter: Reporter, scene: Scene,
            sample_rate: int | None) -> RenderedVideo:
    """Encode ``scene`` into out_dir/{name}.mp4, save the image it returns as the .jpg and
    the captions it said as the .vtt (removed when it said nothing)."""
    # A strict name keeps renders inside out_dir and away from our own ".part" temp files.
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"name must match {_NAME_RE.pattern!r}, got {name!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    video, thumb, vtt = (out_dir / f"{name}.{ext}" for ext in ("mp4", "jpg", "vtt"))
    with atomic(video) as tmp, VideoWriter(tmp, canvas, sample_rate) as writer:
        studio = _Studio(writer, reporter)
        image = scene(studio)
        reporter.report(95.0, "encoding")
        # Thumbnail and captions land first so whoever sees the video can rely on them.
        with atomic(thumb) as tmp_thumb:
            image.convert("RGB").save(tmp_thumb, format="JPEG", quality=85)
        if studio.cues:
            with atomic(vtt) as tmp_vtt:
                tmp_vtt.write_text(webvtt(studio.cues), encoding="utf-8")
        else:
            vtt.unlink(missing_ok=True)
    reporter.report(100.0, "done")
    return RenderedVideo(video, thumb, writer.frames / canvas.fps,
                         vtt if studio.cues else None, writer.narrated)


def _text(value: object, label: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{label} must be a non-empty string")
    return " ".join(value.split())


def _optional_text(value: object, label: str) -> str | None:
    return None if value is None or (isinstance(value, str) and not value.strip()) else _text(
        value, label)


def _seconds(value: object, label: str) -> float:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{label} must be a positive finite number of seconds, got {value!r}")
    return float(number)


def _frames_for(length: float, canvas: Canvas) -> int:
    return canvas.frames(min(MAX_LENGTH, max(MIN_LENGTH, _seconds(length, "length"))))


def _spoken_frames(narration: Narration | None, canvas: Canvas) -> int:
    return 0 if narration is None else canvas.frames(narration.duration + PAUSE_S)


def _fit(frames: list[int], limit: int, order: Sequence[int]) -> list[int]:
    """Shorten parts, in ``order``, down to one frame each until they fit in ``limit``."""
    frames = list(frames)
    for index in order:
        excess = sum(frames) - limit
        if excess <= 0:
            break
        frames[index] -= min(excess, frames[index] - 1)
    return frames


def render_explainer(out_dir: Path, name: str, title: str, body: str | None = None,
                     length: float = 8.0, width: int = 640, height: int = 360, fps: int = 24,
                     progress: Progress | None = None, explanation: str | None = None,
                     voice: str = "default", speed: float = 1.0,
                     narrate: bool = True,
                     scene_type: SceneKind | None = None) -> RenderedVideo:
    """Render out_dir/{name}.mp4 (H.264 + AAC, yuv420p, faststart), {name}.jpg and {name}.vtt.

    A title card speaks the question (``title``), an animated scene of ``scene_type``
    (None: the kind the question asks for, see doubt_kinds.classify) speaks
    ``explanation`` when given, and a closing card says "Thanks for watching"; the
    current caption is burnt into the bottom of the picture. Each narrated part lasts
    at least its speech plus PAUSE_S; ``length`` (clamped to [MIN_LENGTH, MAX_LENGTH])
    is the target total, which the scene fills, and the total never exceeds
    MAX_LENGTH (speech that does not fit is cut with its captions). With
    ``narrate=False``, or without espeak-ng, the video is silent and has no captions.
    ``progress(percent, stage)`` is called with strictly increasing percents ending at 100.

    :raises ValueError: bad text, length, size, name, scene_type, an unknown voice or a
        speed outside 0.5..2.0.
    """
    canvas = Canvas(width, height, fps)
    title = _text(title, "title")
    kind = resolve_kind(title, scene_type)
    body = _optional_text(body, "body")
    explanation = _optional_text(explanation, "explanation")
    target = _frames_for(length, canvas)
    narrator = Narrator(voice, speed, narrate)
    question, explained, thanks = (
        narrator.say(text) if text else None for text in (title, explanation, THANKS)
    )
    n_title = max(round(target * 0.3), _spoken_frames(question, canvas))
    n_closing = max(round(target * 0.2), _spoken_frames(thanks, canvas))
    n_diagram = max(target - n_title - n_closing, _spoken_frames(explained, canvas), 1)
    n_title, n_diagram, n_closing = _fit([n_title, n_diagram, n_closing],
                                         canvas.frames(MAX_LENGTH), order=(1, 2, 0))

    def scene(studio: _Studio) -> Image.Image:
        studio.reporter.step("title", 0)
        thumb = card(canvas, title, body, kicker="Question")
        studio.part([thumb], question, n_title, n_title)
        studio.reporter.step(kind, n_title)
        studio.part(scene_frames(canvas, title, n_diagram, kind), explained, n_diagram,
                    n_diagram)
        studio.reporter.step("closing", n_title + n_diagram)
        studio.part([card(canvas, THANKS, title, kicker="Recap")], thanks, n_closing, n_closing)
        return thumb

    total = n_title + n_diagram + n_closing
    rendered = _render(out_dir, name, canvas, Reporter(progress, total), scene,
                       narrator.sample_rate)
    return replace(rendered, scene_type=kind)


def render_clip(out_dir: Path, name: str, content: str, length: float, width: int = 640,
                height: int = 360, fps: int = 24, progress: Progress | None = None,
                scene_type: SceneKind | None = None) -> RenderedVideo:
    """Render a silent clip of one animated scene of ``content`` (a Manim stand-in): a
    plot, steps or a diagram as ``scene_type`` says (None: as the content asks for).

    :raises ValueError: bad content, length, size, name or scene_type.
    """
    canvas = Canvas(width, height, fps)
    content = _text(content, "content")
    kind = resolve_kind(content, scene_type)
    total = _frames_for(length, canvas)

    def scene(studio: _Studio) -> Image.Image:
        studio.reporter.step(kind, 0)
        pictures = _Keep(scene_frames(canvas, content, total, kind), total // 2)
        studio.part(pictures, least=total, most=total)
        return pictures.image() or card(canvas, content)

    rendered = _render(out_dir, name, canvas, Reporter(progress, total), scene, None)
    return replace(rendered, scene_type=kind)


@dataclass(frozen=True)
class _Segment:
    kind: str
    seconds: float | None = None
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
    text = _text(raw.get("text", {"intro": title, "outro": THANKS}.get(kind)), f"{kind} text")
    seconds = raw.get("duration")
    if seconds is None:
        return _Segment(kind, None if kind == "narration" else 3.0, text)
    seconds = _seconds(seconds, f"{kind} duration")
    if seconds > MAX_LENGTH:
        raise ValueError(f"{kind} duration must be at most {MAX_LENGTH} s, got {seconds}")
    return _Segment(kind, seconds, text)


@dataclass
class _Part:
    """A stretch of the composed video: a card or a clip, maybe narrated."""

    kind: str
    text: str = ""
    clip: Path | None = None
    seconds: float = 0.0  # at least this long (a clip also lasts as long as itself)
    narration: Narration | None = None


def _reading_seconds(text: str) -> float:
    # Silent narration stays up long enough to read, at roughly 2.5 words a second.
    return min(10.0, max(2.0, len(text.split()) / 2.5))


def _plan(segments: Sequence[_Segment], narrator: Narrator) -> list[_Part]:
    parts: list[_Part] = []
    for seg in segments:
        if seg.kind == "manim":
            parts.append(_Part("manim", clip=seg.path))
            continue
        if seg.kind != "narration":
            parts.append(_Part(seg.kind, seg.text, seconds=seg.seconds or 3.0))
            continue
        spoken = narrator.say(seg.text)
        least = seg.seconds or 0.0
        if spoken is None:
            parts.append(_Part("narration", seg.text, seconds=least or _reading_seconds(seg.text)))
        elif parts and parts[-1].kind == "manim" and parts[-1].narration is None:
            # Said over the clip just before it, which holds its last frame if need be.
            parts[-1].narration = spoken
            parts[-1].seconds = max(least, spoken.duration + PAUSE_S)
        else:
            parts.append(_Part("narration", seg.text, seconds=max(least,
                                                                 spoken.duration + PAUSE_S),
                               narration=spoken))
    return parts


def _clip_seconds(path: Path) -> float:
    """The clip's duration from its container, 0 when it does not say."""
    with av.open(str(path)) as container:
        return container.duration / av.time_base if container.duration else 0.0


def _clip_frames(path: Path, canvas: Canvas) -> Iterator[VideoFrame]:
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


def _audio_options(audio: Mapping[str, object] | None) -> tuple[str, float]:
    if audio is None:
        return "default", 1.0
    if not isinstance(audio, Mapping):
        raise ValueError(f"audio must be a mapping, got {audio!r}")
    voice, speed = audio.get("voice", "default"), audio.get("speed", 1.0)
    if not isinstance(voice, str):
        raise ValueError(f"audio voice must be a string, got {voice!r}")
    if isinstance(speed, bool) or not isinstance(speed, int | float):
        raise ValueError(f"audio speed must be a number, got {speed!r}")
    return voice, float(speed)


def compose(out_dir: Path, name: str, segments: Sequence[Mapping[str, object]],
            title: str = "Coming up", width: int = 640, height: int = 360, fps: int = 24,
            progress: Progress | None = None, audio: Mapping[str, object] | None = None,
            narrate: bool = True) -> RenderedVideo:
    """Concatenate intro/outro/narration cards and decoded manim clips (a Revideo stand-in).

    Segments look like ``{"type": "intro", "duration": 5}``, ``{"type": "manim", "path": p}``
    (skipped when ``path`` is None), ``{"type": "narration", "text": "..."}`` and
    ``{"type": "outro", "duration": 3}``; cards accept an optional ``text``. A narration
    is spoken with ``audio`` ``{"voice", "speed"}`` and captioned: over the manim clip
    right before it (its last frame held until the speech ends), else over a card of
    its text; it lasts as long as its speech (plus PAUSE_S), or ``duration`` if longer.
    Intro and outro cards are silent. The thumbnail is the first clip's middle frame,
    else the first card.

    :raises ValueError: a bad segment, title, size, name, voice or speed.
    """
    canvas = Canvas(width, height, fps)
    title = _text(title, "title")
    voice, speed = _audio_options(audio)
    plan = [seg for raw in segments if (seg := _parse_segment(raw, title)) is not None]
    if not plan:
        raise ValueError("segments contain nothing to render")
    narrator = Narrator(voice, speed, narrate)
    parts = _plan(plan, narrator)

    def scene(studio: _Studio) -> Image.Image:
        thumb: Image.Image | None = None
        first_card: Image.Image | None = None
        for index, part in enumerate(parts):
            studio.reporter.step(part.kind, index)
            least = canvas.frames(part.seconds) if part.seconds else 0
            if part.clip is not None:
                middle = canvas.frames(_clip_seconds(part.clip)) // 2
                pictures = _Keep(_clip_frames(part.clip, canvas), middle)
                studio.part(pictures, part.narration, least)
                thumb = thumb or pictures.image()
            else:
                image = card(canvas, part.text, kicker=part.kind)
                first_card = first_card or image
                studio.part([image], part.narration, least, least)
        return thumb or first_card or card(canvas, title)

    return _render(out_dir, name, canvas, Reporter(progress, len(parts)), scene,
                   narrator.sample_rate)


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
