"""Spoken text with exact caption timings: each cue is synthesised alone, then joined."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vq_plugins.services import speech
from vq_plugins.services.captions import Cue, split_cues
from vq_plugins.services.video_writer import Samples

# Between two cues of one narration; espeak-ng's own sentence pause is trimmed away.
GAP_S = 0.2


@dataclass(frozen=True)
class Narration:
    """The samples of a spoken text and its cues, timed from the first sample."""

    samples: Samples
    sample_rate: int
    cues: tuple[Cue, ...]

    @property
    def duration(self) -> float:
        """Seconds from the first spoken sample to the last."""
        return len(self.samples) / self.sample_rate


class Narrator:
    """Speaks with one voice and speed, or not at all (``enabled`` is False).

    :raises ValueError: an unknown voice or a speed out of range, when enabled.
    """

    def __init__(self, voice: str = "default", speed: float = 1.0, enabled: bool = True) -> None:
        self.enabled = enabled and speech.speech_available()
        self.voice, self.speed = voice, speed
        if self.enabled:
            self.speed = speech.check_speed(speed)
            speech.check_voice(voice)
        self.sample_rate: int | None = None

    def say(self, text: str) -> Narration | None:
        """``text`` spoken cue by cue; None when this narrator is silent."""
        if not self.enabled:
            return None
        parts: list[Samples] = []
        cues: list[Cue] = []
        offset, rate = 0, 0
        for piece in split_cues(text):
            spoken = speech.synthesize(piece, self.voice, self.speed)
            rate = spoken.sample_rate
            if parts:
                gap = round(GAP_S * rate)
                parts.append(np.zeros(gap, np.int16))
                offset += gap
            parts.append(spoken.samples)
            cues.append(Cue(offset / rate, (offset + len(spoken.samples)) / rate, piece))
            offset += len(spoken.samples)
        if not parts:
            return None
        self.sample_rate = rate
        return Narration(np.concatenate(parts), rate, tuple(cues))
