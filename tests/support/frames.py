"""Decoded video frames for the tests that compare pictures."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def frame_at(path: Path, at: float) -> np.ndarray:
    """The first frame shown at or after ``at`` seconds, as signed RGB (for differences)."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= at:
                return frame.to_ndarray(format="rgb24").astype(np.int16)
    raise AssertionError(f"no frame at {at} s in {path}")


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two frames, 0..255."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
