"""Sessions of signed-in users (SQL in ``sql/queries/sessions.sql``).

A session is a row of ``vq.sessions`` found by the hash of the secret its cookie
carries; it lasts until it expires or its row is deleted (sign-out, a password or role
change, disabling the user, an admin). Making and hashing the secret is
``vq_ui.auth.sessions``'s job, so these methods take hashes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

from vq_core.db.queries import sql
from vq_core.store.records import export

if TYPE_CHECKING:
    from vq_core.store.records.sessions import (
        LiveSession as LiveSession,
    )
    from vq_core.store.records.sessions import (
        SessionRecord as SessionRecord,
    )


def __getattr__(name: str) -> Any:
    # The records are made on first use (vq_core.store.records says why).
    return export("sessions", __name__, name)


class SessionStore:
    """The methods on ``vq.sessions``; part of ``Store``."""

    pool: asyncpg.Pool

    async def add_session(
        self, token_hash: str, username: str, max_age_s: float, ip: str, user_agent: str
    ) -> int | None:
        """Open a session for an enabled user, valid for ``max_age_s``; its id, or
        ``None`` if the user is unknown or disabled. Deletes expired sessions too."""
        session_id = await self.pool.fetchval(
            sql("create_session"), token_hash, username, max_age_s, ip, user_agent
        )
        return None if session_id is None else int(session_id)

    async def use_session(self, token_hash: str) -> LiveSession | None:
        """The live session with this hash, if its user is enabled, recording its use
        (at most once a minute)."""
        row = await self.pool.fetchrow(sql("get_session"), token_hash)
        if row is None:
            return None
        if row["stale"]:
            await self.pool.execute(sql("touch_session"), row["id"])
        from vq_core.store.records.sessions import LiveSession

        return LiveSession(row["id"], row["username"], row["role"], row["last_seen_at"])

    async def end_session_by_hash(self, token_hash: str) -> bool:
        """End the session with this hash (sign-out); whether there was one."""
        return await self.pool.execute(sql("end_session_by_hash"), token_hash) != "DELETE 0"

    async def list_user_sessions(self, username: str) -> list[SessionRecord] | None:
        """A user's live sessions, newest first; ``None`` if there is no such user."""
        rows = await self.pool.fetch(sql("list_user_sessions"), username)
        if not rows:
            return None
        from vq_core.store.records.sessions import SessionRecord

        return [
            SessionRecord(
                id=r["id"],
                username=username,
                created_at=r["created_at"],
                last_seen_at=r["last_seen_at"],
                expires_at=r["expires_at"],
                ip=r["ip"],
                user_agent=r["user_agent"],
            )
            for r in rows
            if r["id"] is not None  # the user's row alone: no sessions
        ]

    async def end_user_sessions(self, username: str) -> int | None:
        """End every session of a user; how many ended, ``None`` if there is no such user."""
        row = await self.pool.fetchrow(sql("end_user_sessions"), username)
        assert row is not None  # scalar subqueries only: always one row
        return None if row["user_id"] is None else int(row["n"])

    async def end_session(self, session_id: int) -> SessionRecord | None:
        """End one session by id; the session as it was, ``None`` if there is none."""
        row = await self.pool.fetchrow(sql("end_session"), session_id)
        from vq_core.store.records.sessions import SessionRecord

        return SessionRecord(**dict(row)) if row is not None else None
