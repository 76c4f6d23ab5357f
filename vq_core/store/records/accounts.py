"""The records of ``vq_core.store.accounts`` (users, logins and API tokens), which exports them;
made on first use (``vq_core.store.records`` says why)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["LiveToken", "LoginAttempt", "TokenRecord", "UserLogin", "UserRecord"]


@dataclass(frozen=True)
class UserRecord:
    """A row of ``vq.users`` without its password hash."""

    id: int
    username: str
    role: str
    created_at: datetime
    disabled: bool


@dataclass(frozen=True)
class UserLogin:
    """What checking a password or a session needs of a user, hash included."""

    id: int
    username: str
    password_hash: str
    role: str
    disabled: bool


@dataclass(frozen=True)
class TokenRecord:
    """A row of ``vq.api_tokens`` without its hash."""

    id: int
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


@dataclass(frozen=True)
class LiveToken:
    """The live token a presented token's hash matched."""

    id: int
    name: str
    role: str
    last_used_at: datetime | None


@dataclass(frozen=True)
class LoginAttempt:
    """The answer to a sign-in attempt before its password is checked: whether it may go
    on (it is then counted as a failure until cleared), the failures counted before it
    within the window, and the oldest one's age."""

    allowed: bool
    failures: int
    oldest_age_s: float | None
