"""The records of ``vq_core.store.sessions`` (sign-in sessions), which exports them;
made on first use (``vq_core.store.records`` says why)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["LiveSession", "SessionRecord"]


@dataclass(frozen=True)
class SessionRecord:
    """A row of ``vq.sessions`` without its hash, with its user's name."""

    id: int
    username: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str
    user_agent: str


@dataclass(frozen=True)
class LiveSession:
    """The live session a presented secret's hash matched, and who it belongs to now."""

    id: int
    username: str
    role: str
    last_seen_at: datetime
