"""espeak-ng speech: voices, speed, trimming, and the caption cues built from it."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from vq_plugins.services import speech
from vq_plugins.services.captions import Cue, clip_cues, cue_at, split_cues, webvtt
from vq_plugins.services.narration import GAP_S, Narrator

QUESTION = "Why is the sky blue on a clear afternoon?"


def test_speech_is_available_here() -> None:
    # The render extra ships espeak-ng; without it every narrated test below is moot.
    assert speech.speech_available()


def test_synthesize_returns_exact_mono_speech() -> None:
    spoken = speech.synthesize(QUESTION)
    assert spoken.samples.dtype == np.int16 and spoken.samples.ndim == 1
    assert spoken.sample_rate == 22050
    assert spoken.duration == len(spoken.samples) / spoken.sample_rate
    assert 1.0 < spoken.duration < 6.0
    # Trimmed: the first and last 20 ms are not long runs of silence.
    edge = round(0.02 * spoken.sample_rate)
    assert np.abs(spoken.samples[: edge * 2]).max() > 64
    assert np.abs(spoken.samples[-edge * 2 :]).max() > 64


def test_double_speed_is_clearly_shorter() -> None:
    normal = speech.synthesize(QUESTION, speed=1.0).duration
    fast = speech.synthesize(QUESTION, speed=2.0).duration
    slow = speech.synthesize(QUESTION, speed=0.5).duration
    assert fast / normal < 0.7
    assert slow / normal > 1.4


def test_female_and_male_voices_differ() -> None:
    female = speech.synthesize(QUESTION, voice="female").samples
    male = speech.synthesize(QUESTION, voice="male").samples
    size = min(len(female), len(male))
    assert len(female) != len(male) or not np.array_equal(female[:size], male[:size])


@pytest.mark.parametrize("voice", ["en-gb", "en-us+f2", "fr"])
def test_espeak_names_pass_through(voice: str) -> None:
    assert speech.check_voice(voice) == voice
    assert speech.synthesize("Bonjour", voice=voice).duration > 0.2


@pytest.mark.parametrize("voice", ["calm", "en-us+nope", "../../etc", "", "x" * 200])
def test_unknown_voice_is_a_value_error_naming_it(voice: str) -> None:
    with pytest.raises(ValueError, match="voice"):
        speech.synthesize("Hello", voice=voice)


@pytest.mark.parametrize("speed", [0.49, 2.01, 0, -1, math.nan, math.inf, True, "1"])
def test_bad_speed_is_a_value_error(speed: object) -> None:
    with pytest.raises(ValueError, match="speed"):
        speech.synthesize("Hello", speed=speed)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_text_is_a_value_error(text: object) -> None:
    with pytest.raises(ValueError, match="text"):
        speech.synthesize(text)  # type: ignore[arg-type]


def test_split_cues_keeps_sentences_and_short_runs() -> None:
    text = ("Light from the sun is white. It holds every colour of the rainbow at once, "
            "from deep red to violet and beyond! Why?")
    cues = split_cues(text, max_words=9)
    assert " ".join(cues) == " ".join(text.split())
    assert cues[0] == "Light from the sun is white."
    assert cues[-1] == "Why?"
    assert all(len(c.split()) <= 9 for c in cues)
    assert len(cues) == 4  # the 17-word sentence is cut into two near-equal halves


def test_webvtt_timestamps_and_escaping() -> None:
    text = webvtt([Cue(0.0, 1.5, "a --> b"), Cue(3661.25, 3662.0, "later")])
    assert text.startswith("WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.500\na -> b\n")
    assert "01:01:01.250 --> 01:01:02.000\nlater" in text


def test_cue_lookup_and_clipping() -> None:
    cues = [Cue(0.0, 1.0, "one"), Cue(1.2, 2.0, "two")]
    assert cue_at(cues, 1.1) == cues[0]  # held through the gap
    assert cue_at(cues, 1.5) == cues[1]
    assert clip_cues(cues, 1.5) == [cues[0], Cue(1.2, 1.5, "two")]
    assert clip_cues(cues, 1.0) == [cues[0]]


def test_narrator_times_each_cue_exactly() -> None:
    text = "Blue light scatters more. Red light passes straight through the air to your eyes."
    narration = Narrator("default", 1.0).say(text)
    assert narration is not None
    cues = narration.cues
    assert [c.text for c in cues] == split_cues(text)
    assert cues[0].start == 0.0
    assert cues[-1].end == pytest.approx(narration.duration)
    for before, after in itertools.pairwise(cues):
        assert after.start - before.end == pytest.approx(GAP_S, abs=1e-3)
    # Each cue's samples are the speech of that cue alone.
    first = speech.synthesize(cues[0].text)
    assert cues[0].end == pytest.approx(first.duration, abs=0.01)


def test_silent_narrator_says_nothing_and_checks_nothing() -> None:
    assert Narrator("calm", 9.0, enabled=False).say("Hello") is None
    with pytest.raises(ValueError, match="calm"):
        Narrator("calm")
