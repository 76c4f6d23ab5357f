"""Caption cues: splitting narration into short cues, WebVTT text, and burnt-in captions."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache

from PIL import Image, ImageDraw

from vq_plugins.services.drawing import FG, draw_lines, font, line_step, wrap
from vq_plugins.services.video_writer import Canvas

MAX_CUE_WORDS = 9
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_BAND_ALPHA = 200


@dataclass(frozen=True)
class Cue:
    """A caption shown from ``start`` to ``end`` seconds."""

    start: float
    end: float
    text: str

    def shifted(self, seconds: float) -> Cue:
        """The same cue ``seconds`` later."""
        return replace(self, start=self.start + seconds, end=self.end + seconds)


def split_cues(text: str, max_words: int = MAX_CUE_WORDS) -> list[str]:
    """Sentences of ``text``, each cut into near-equal runs of at most ``max_words`` words."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(" ".join(text.split())):
        words = sentence.split()
        if not words:
            continue
        parts = math.ceil(len(words) / max_words)
        size = math.ceil(len(words) / parts)
        pieces.extend(" ".join(words[i : i + size]) for i in range(0, len(words), size))
    return pieces


def clip_cues(cues: Iterable[Cue], end: float) -> list[Cue]:
    """The cues (or parts of cues) shown before ``end``."""
    return [replace(c, end=min(c.end, end)) for c in cues if c.start < end]


def _timestamp(seconds: float) -> str:
    millis = round(max(0.0, seconds) * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def webvtt(cues: Iterable[Cue]) -> str:
    """A WebVTT document of ``cues``."""
    blocks = ["WEBVTT"]
    for index, cue in enumerate(cues, 1):
        # "-->" would end the timing line early, so the text may not contain it.
        text = cue.text.replace("-->", "->")
        blocks.append(f"{index}\n{_timestamp(cue.start)} --> {_timestamp(cue.end)}\n{text}")
    return "\n\n".join(blocks) + "\n"


class CaptionBurner:
    """Draws a cue in a translucent band at the bottom of frames of one canvas."""

    def __init__(self, canvas: Canvas) -> None:
        self.canvas = canvas
        self._face = font(max(10, canvas.height // 16))
        self._overlay = lru_cache(maxsize=8)(self._render)

    def _render(self, text: str) -> tuple[Image.Image, Image.Image, int]:
        w, h = self.canvas.width, self.canvas.height
        lines = wrap(text, self._face, w * 0.9, 2)
        pad = max(2, h // 60)
        height = round(line_step(self._face) * len(lines) + 2 * pad)
        band = Image.new("RGB", (w, height), (0, 0, 0))
        draw_lines(ImageDraw.Draw(band), lines, self._face, pad, FG)
        # Dark pixels (the band) are translucent; the text is opaque and easy to read.
        mask = band.convert("L").point(lambda v: max(_BAND_ALPHA, v))
        top = h - height - max(2, h // 40)
        return band, mask, top

    def burn(self, image: Image.Image, text: str | None) -> Image.Image:
        """``image`` with ``text`` drawn over its bottom (a copy; ``image`` is untouched)."""
        if not text:
            return image
        band, mask, top = self._overlay(text)
        out = image.convert("RGB") if image.mode != "RGB" else image.copy()
        out.paste(band, (0, top), mask)
        return out


def cue_at(cues: list[Cue], seconds: float) -> Cue | None:
    """The cue being shown at ``seconds``: the last one started, held through the gaps."""
    current = None
    for cue in cues:
        if cue.start > seconds:
            break
        current = cue
    return current
