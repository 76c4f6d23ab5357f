"""Text to speech with espeak-ng, called in-process through ctypes.

The ``espeakng-loader`` wheel (the ``render`` extra) ships ``libespeak-ng.so`` and its
voice data, so no system package is needed. espeak-ng keeps global state (one current
voice, one rate, one callback), so every synthesis holds one module-level lock and the
library is initialised once, lazily, by the first caller.
"""

from __future__ import annotations

import ctypes
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

# espeak-ng's words per minute at speed 1.0 (its own default).
BASE_WPM = 175
MIN_SPEED, MAX_SPEED = 0.5, 2.0
VOICES = {"default": "en-us", "female": "en-us+f3", "male": "en-us+m3"}

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_RATE = 1
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
_VOICE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_/ ()-]{0,63}(\+[A-Za-z0-9_ -]{1,32})?")
# Quieter than this counts as silence when trimming the ends (int16 full scale is 32767).
_SILENCE = 64
_MARGIN_S = 0.01

_lock = threading.Lock()
_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


@dataclass(frozen=True)
class Speech:
    """Mono 16-bit samples of spoken text."""

    samples: np.ndarray[Any, np.dtype[np.int16]]
    sample_rate: int

    @property
    def duration(self) -> float:
        """Seconds of audio, exactly ``len(samples) / sample_rate``."""
        return len(self.samples) / self.sample_rate


class _Engine:
    """The loaded library, its sample rate and the callback that collects samples."""

    def __init__(self) -> None:
        import espeakng_loader  # type: ignore[import-untyped]

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_Callback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_SetVoiceByProperties.restype = ctypes.c_int
        lib.espeak_GetCurrentVoice.argtypes = []
        lib.espeak_GetCurrentVoice.restype = ctypes.POINTER(_Voice)
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint,
                                     ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                     ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        data = Path(espeakng_loader.get_data_path())
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data).encode(), 0)
        if rate <= 0:
            raise OSError(f"espeak-ng failed to initialise (returned {rate})")
        self.lib, self.sample_rate, self.variants = lib, rate, data / "voices" / "!v"
        self.chunks: list[np.ndarray[Any, np.dtype[np.int16]]] = []
        # The library calls back into this object; keeping it here keeps it alive.
        self._callback = _Callback(self._collect)
        lib.espeak_SetSynthCallback(self._callback)
        self._resolved: dict[str, bytes] = {}

    def _collect(self, wav: Any, count: int, _events: Any) -> int:
        if count > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def select(self, voice: str) -> None:
        """Make ``voice`` current; ValueError naming it when espeak-ng does not know it."""
        name = self._resolved.get(voice) or self._resolve(voice)
        if self.lib.espeak_SetVoiceByName(name) != _EE_OK:
            raise ValueError(f"unknown voice {voice!r}")

    def _resolve(self, voice: str) -> bytes:
        # A name like "en-us" or "English (America)", or a language like "en-gb", then
        # an optional "+variant" that must be one of the shipped variant files (the
        # library would silently ignore an unknown one).
        base, _, variant = VOICES.get(voice, voice).partition("+")
        if not _VOICE_RE.fullmatch(voice) or (variant and not (self.variants / variant).is_file()):
            raise ValueError(f"unknown voice {voice!r}")
        if self.lib.espeak_SetVoiceByName(base.encode()) != _EE_OK:
            wanted = _Voice(None, base.encode(), None, 0, 0, 0, 0, 0, None)
            if self.lib.espeak_SetVoiceByProperties(ctypes.byref(wanted)) != _EE_OK:
                raise ValueError(f"unknown voice {voice!r}")
        identifier: bytes | None = self.lib.espeak_GetCurrentVoice().contents.identifier
        if not identifier:
            raise ValueError(f"unknown voice {voice!r}")
        name = identifier + (b"+" + variant.encode() if variant else b"")
        self._resolved[voice] = name
        return name

    def speak(self, text: str, voice: str, speed: float) -> Speech:
        self.select(voice)
        self.lib.espeak_SetParameter(_ESPEAK_RATE, round(BASE_WPM * speed), 0)
        self.chunks = []
        data = text.encode()
        status = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                       None, None)
        if status != _EE_OK:
            raise OSError(f"espeak-ng could not synthesise (status {status})")
        samples = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
        self.chunks = []
        return Speech(_trim(samples, self.sample_rate), self.sample_rate)


def _trim(samples: np.ndarray[Any, np.dtype[np.int16]],
          rate: int) -> np.ndarray[Any, np.dtype[np.int16]]:
    """Drop the silence espeak-ng leaves at both ends, keeping a few milliseconds."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > _SILENCE)
    if loud.size == 0:
        return samples[:0]
    margin = round(_MARGIN_S * rate)
    return samples[max(0, loud[0] - margin): loud[-1] + 1 + margin]


@lru_cache(maxsize=1)
def _engine() -> _Engine:
    return _Engine()


def speech_available() -> bool:
    """Whether the espeak-ng wheel imports and its library loads here."""
    try:
        with _lock:
            _engine()
    except (ImportError, OSError):
        return False
    return True


def check_speed(speed: object) -> float:
    """``speed`` as a float; ValueError unless a number in [MIN_SPEED, MAX_SPEED]."""
    # NaN fails both comparisons, so it is refused too.
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not (
        MIN_SPEED <= speed <= MAX_SPEED
    ):
        raise ValueError(f"speed must be a number in [{MIN_SPEED}, {MAX_SPEED}], got {speed!r}")
    return float(speed)


def check_voice(voice: object) -> str:
    """``voice`` if espeak-ng knows it (needs ``speech_available()``), else ValueError.

    "default", "female" and "male" are American English voices; any other name goes
    to espeak-ng as it is ("en-gb", "fr", "en-us+f2").
    """
    if not isinstance(voice, str) or not voice.strip():
        raise ValueError(f"voice must be a non-empty string, got {voice!r}")
    with _lock:
        _engine().select(voice)
    return voice


def refuse_unknown_voice(voice: object) -> None:
    """``check_voice`` where espeak-ng is here; nothing without it (a silent render
    needs no voice). The renderers call it before any work, so a bad voice wastes none.
    """
    if speech_available():
        check_voice(voice)


def synthesize(text: str, voice: str = "default", speed: float = 1.0) -> Speech:
    """Speak ``text``; silence at both ends is trimmed, so ``duration`` is the speech.

    :param voice: see ``check_voice``.
    :param speed: 1.0 is 175 words a minute; 0.5..2.0.
    :raises ValueError: empty text, an unknown voice, or a speed out of range.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text to speak must be a non-empty string")
    speed = check_speed(speed)
    check_voice(voice)
    with _lock:
        return _engine().speak(" ".join(text.split()), voice, speed)
