"""The request bodies of the three service contracts, as the reference services check them.

docs/services.md describes the same contracts for people; these models are what
``vq services serve`` accepts (unknown fields are ignored, as a tolerant server does).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]
Word = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class RenderRequest(BaseModel):
    """Orchestrator ``POST /render``."""

    job_id: Word
    job_type: Word = "doubt"
    input: Text
    style: Word = "detailed"
    length: float = Field(default=60.0, gt=0, le=600)
    voice: Word = "default"


class ManimRequest(BaseModel):
    """Manim ``POST /render``; ``scene_type`` "auto" reads the kind from ``content``."""

    scene_type: Literal["auto", "diagram", "plot", "steps"] = "auto"
    content: Text
    style: Word = "detailed"


class Segment(BaseModel):
    """One segment of a Revideo composition."""

    type: Literal["intro", "manim", "narration", "outro"]
    duration: float | None = Field(default=None, gt=0, le=120)
    url: str | None = Field(default=None, max_length=2000)
    text: Text | None = None


class Audio(BaseModel):
    """How narration segments are spoken: an espeak-ng voice ("default", "female",
    "male" or an espeak-ng name such as "en-gb") and a speed (1.0 is 175 words a minute).
    The reference speaks and captions them; an unknown voice is a 400 naming audio.voice."""

    voice: Word = "default"
    speed: float = Field(default=1.0, ge=0.5, le=2.0)


class ComposeRequest(BaseModel):
    """Revideo ``POST /compose``."""

    segments: list[Segment] = Field(min_length=1, max_length=50)
    audio: Audio = Field(default_factory=Audio)
