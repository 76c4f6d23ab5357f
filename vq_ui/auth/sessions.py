"""Server-side sessions of signed-in people: opened at sign-in, found from the cookie on
every request, ended by sign-out, a password or role change, disabling the user, or an
admin.

The cookie carries a random secret (256 bits); the database keeps only its sha256, so
a copy of ``vq.sessions`` signs nobody in. A session is valid while its row exists,
has not expired and its user is enabled; ending a session deletes the row, so a copied
cookie stops working at once and re-enabling a user brings no old session back.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from vq_core.store import Store
from vq_core.store.sessions import SessionRecord
from vq_ui.auth.roles import Role, User
from vq_ui.auth.users import UnknownName, hash_token

SECRET_BYTES = 32
MAX_USER_AGENT = 200


@dataclass(frozen=True)
class SessionInfo:
    """A session as the admin sees it (never its secret nor its hash)."""

    id: int
    username: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str
    user_agent: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "id": self.id,
            "username": self.username,
            "created_at": self.created_at.isoformat(),
            "last_seen_at": self.last_seen_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "ip": self.ip,
            "user_agent": self.user_agent,
        }


def _info(rec: SessionRecord) -> SessionInfo:
    return SessionInfo(**asdict(rec))


def _printable(text: str, limit: int) -> str:
    # Headers are the client's to choose: keep what a terminal and PostgreSQL show as is.
    return "".join(c for c in text if c.isprintable())[:limit]


async def start_session(
    store: Store, username: str, max_age_s: float, ip: str, user_agent: str
) -> str | None:
    """Open a session for an enabled user; the secret for the cookie (shown nowhere
    else), or ``None`` if the user is unknown or disabled by now."""
    secret = secrets.token_urlsafe(SECRET_BYTES)
    opened = await store.add_session(
        hash_token(secret),
        username,
        max_age_s,
        _printable(ip, 100),
        _printable(user_agent, MAX_USER_AGENT),
    )
    return secret if opened is not None else None


async def session_user(store: Store, secret: str) -> User | None:
    """Who the session with this secret belongs to, if it is live and the user enabled."""
    if not secret or len(secret) > 100:
        return None
    live = await store.use_session(hash_token(secret))
    if live is None:
        return None
    return User(live.username, Role(live.role), "session", session_id=live.id)


async def end_session(store: Store, secret: str) -> bool:
    """End the session with this secret (sign-out); whether there was one."""
    if not secret or len(secret) > 100:
        return False
    return await store.end_session_by_hash(hash_token(secret))


async def list_sessions(store: Store, username: str) -> list[SessionInfo]:
    """A user's live sessions, newest first; ``UnknownName`` if there is no such user."""
    found = await store.list_user_sessions(username)
    if found is None:
        raise UnknownName(f"no user named {username!r}")
    return [_info(r) for r in found]


async def end_user_sessions(store: Store, username: str) -> int:
    """End every session of a user; how many ended. ``UnknownName`` if no such user."""
    ended = await store.end_user_sessions(username)
    if ended is None:
        raise UnknownName(f"no user named {username!r}")
    return ended


async def end_session_by_id(store: Store, session_id: int) -> SessionInfo:
    """End one session by its id; ``UnknownName`` if there is none."""
    if not 0 < session_id < 2**63:
        raise UnknownName(f"no session {session_id}")  # beyond bigint: no such id
    ended = await store.end_session(session_id)
    if ended is None:
        raise UnknownName(f"no session {session_id}")
    return _info(ended)
