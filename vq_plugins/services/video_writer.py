"""Streaming an MP4 to disk: H.264 video, an optional AAC track, atomic file replacement."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame
from PIL import Image

Progress = Callable[[float, str], None]
Samples = np.ndarray[Any, np.dtype[np.int16]]

# ultrafast keeps an 8 s clip around half a CPU second; crf 23 is x264's visually-fine default.
_X264_OPTIONS = {"preset": "ultrafast", "crf": "23"}
# Speech needs little: 64 kb/s mono AAC is clear at espeak-ng's 22.05 kHz.
_AAC_BIT_RATE = 64_000


@dataclass(frozen=True)
class Canvas:
    """Frame size and rate of one render."""

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
        """Whole frames covering ``seconds`` (at least one)."""
        return max(1, round(seconds * self.fps))


class Reporter:
    """Forwards strictly increasing percentages so callers can draw a monotonic bar."""

    def __init__(self, callback: Progress | None, total_steps: int) -> None:
        self._callback, self._total, self._last = callback, max(1, total_steps), -1.0

    def step(self, stage: str, done: int) -> None:
        """``done`` of the total steps are finished and ``stage`` begins."""
        # The last 5% is reserved for flushing the encoder and moving the moov atom.
        self.report(95.0 * min(done, self._total) / self._total, stage)

    def report(self, percent: float, stage: str) -> None:
        """Forward ``percent`` if it is above the last one forwarded."""
        if self._callback is not None and percent > self._last:
            self._last = percent
            self._callback(round(percent, 1), stage)


class VideoWriter:
    """Streams frames (and, with ``sample_rate``, mono audio) into an H.264/AAC MP4.

    Audio follows the picture: after each video frame, audio is encoded up to that
    frame's end, taken from what ``play`` queued or silence when nothing is queued,
    so the two tracks stay interleaved and end together. The encoders are flushed
    only if the ``with`` block succeeds.
    """

    def __init__(self, path: Path, canvas: Canvas, sample_rate: int | None = None) -> None:
        self.canvas, self.frames, self._time_base = canvas, 0, Fraction(1, canvas.fps)
        self._container = av.open(str(path), mode="w", format="mp4",
                                  container_options={"movflags": "+faststart"})
        self._stream = self._container.add_stream("libx264", rate=canvas.fps,
                                                  options=dict(_X264_OPTIONS))
        self._stream.width, self._stream.height = canvas.width, canvas.height
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.time_base = self._time_base
        self.sample_rate = sample_rate
        self._audio: Any = None
        self._queued: Samples = np.zeros(0, np.int16)
        self._samples = 0
        if sample_rate is not None:
            self._audio = self._container.add_stream("aac", rate=sample_rate, layout="mono")
            self._audio.bit_rate = _AAC_BIT_RATE

    @property
    def narrated(self) -> bool:
        """Whether the file gets an audio track."""
        return self._audio is not None

    @property
    def seconds(self) -> float:
        """Video written so far."""
        return self.frames / self.canvas.fps

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self._container.mux(self._stream.encode(None))
            if self._audio is not None:
                self._pump()
                self._container.mux(self._audio.encode(None))
            self._container.close()
        else:
            with suppress(Exception):
                self._container.close()

    def play(self, samples: Samples) -> None:
        """Start ``samples`` at the current picture position, dropping any still queued."""
        if self._audio is None:
            raise RuntimeError("this writer has no audio track")
        self._queued = np.asarray(samples, dtype=np.int16)

    def stop(self) -> None:
        """Silence from the current picture position on."""
        self._queued = self._queued[:0]

    @staticmethod
    def frame_of(image: Image.Image) -> VideoFrame:
        """``image`` as a yuv420p frame; converting once is what makes still cards cheap."""
        rgb = VideoFrame.from_ndarray(np.asarray(image.convert("RGB")), format="rgb24")
        return rgb.reformat(format="yuv420p")

    def add_image(self, image: Image.Image, count: int = 1) -> None:
        """Append ``image`` as ``count`` frames."""
        self.add_frame(self.frame_of(image), count)

    def add_frame(self, frame: VideoFrame, count: int = 1) -> None:
        """Append a yuv420p frame of the canvas size ``count`` times."""
        for _ in range(count):
            frame.pts, frame.time_base = self.frames, self._time_base
            self._container.mux(self._stream.encode(frame))
            self.frames += 1
            if self._audio is not None:
                self._pump()

    def _pump(self) -> None:
        """Encode audio up to the end of the last video frame."""
        assert self.sample_rate is not None
        due = self.frames * self.sample_rate // self.canvas.fps - self._samples
        if due <= 0:
            return
        chunk, self._queued = self._queued[:due], self._queued[due:]
        if len(chunk) < due:
            chunk = np.concatenate([chunk, np.zeros(due - len(chunk), np.int16)])
        planar = (chunk.astype(np.float32) / 32768.0).reshape(1, -1)
        frame = AudioFrame.from_ndarray(planar, format="fltp", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts, frame.time_base = self._samples, Fraction(1, self.sample_rate)
        self._samples += due
        self._container.mux(self._audio.encode(frame))


@contextmanager
def atomic(final: Path) -> Iterator[Path]:
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
