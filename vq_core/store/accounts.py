"""Accounts: users, failed logins, API tokens and the secrets app instances share (SQL in
``sql/queries/users.sql``, ``tokens.sql`` and ``app_secrets.sql``; sessions are in
``sessions.py``).

The store keeps and finds rows; hashing passwords and tokens, checking names and
parsing roles is ``vq_ui.auth.users``'s job, so these methods take hashes, not
passwords, and roles as their names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

from vq_core.db.queries import sql
from vq_core.store.records import export

if TYPE_CHECKING:
    from vq_core.store.records.accounts import (
        LiveToken as LiveToken,
    )
    from vq_core.store.records.accounts import (
        LoginAttempt as LoginAttempt,
    )
    from vq_core.store.records.accounts import (
        TokenRecord as TokenRecord,
    )
    from vq_core.store.records.accounts import (
        UserLogin as UserLogin,
    )
    from vq_core.store.records.accounts import (
        UserRecord as UserRecord,
    )


def __getattr__(name: str) -> Any:
    # The records are made on first use (vq_core.store.records says why).
    return export("accounts", __name__, name)


def _user(row: asyncpg.Record) -> UserRecord:
    from vq_core.store.records.accounts import UserRecord

    return UserRecord(**dict(row))


def _token(row: asyncpg.Record) -> TokenRecord:
    from vq_core.store.records.accounts import TokenRecord

    return TokenRecord(**dict(row))


class AccountStore:
    """The methods on ``vq.users``, ``vq.login_failures``, ``vq.api_tokens`` and
    ``vq.app_secrets``; part of ``Store``."""

    pool: asyncpg.Pool

    # -- users ------------------------------------------------------------------

    async def add_user(self, username: str, password_hash: str, role: str) -> UserRecord | None:
        """Add a user with an already hashed password; ``None`` when the name is taken."""
        row = await self.pool.fetchrow(sql("create_user"), username, password_hash, role)
        return _user(row) if row is not None else None

    async def any_user(self) -> bool:
        """Whether any user exists."""
        return bool(await self.pool.fetchval(sql("any_user")))

    async def add_first_admin(self, username: str, password_hash: str) -> bool:
        """Add an admin only while there is no user at all; False if any user exists.

        One statement, so of several instances starting at once only one succeeds.
        """
        return (
            await self.pool.fetchval(sql("create_first_admin"), username, password_hash) is not None
        )

    async def user_login(self, username: str) -> UserLogin | None:
        """A user's hash, role and disabled flag, to check a password or a session."""
        row = await self.pool.fetchrow(sql("get_user_for_login"), username)
        from vq_core.store.records.accounts import UserLogin

        return UserLogin(**dict(row)) if row is not None else None

    async def change_user(
        self,
        username: str,
        password_hash: str | None = None,
        role: str | None = None,
        disabled: bool | None = None,
    ) -> UserRecord | None:
        """Change a user's hash, role or disabled flag (``None`` keeps the current value);
        ``None`` if there is no such user."""
        row = await self.pool.fetchrow(sql("update_user"), username, password_hash, role, disabled)
        return _user(row) if row is not None else None

    async def rehash_password(self, username: str, password_hash: str) -> None:
        """Store a stronger hash of a user's unchanged password; their sessions stay."""
        await self.pool.execute(sql("rehash_password"), username, password_hash)

    async def list_users(self) -> list[UserRecord]:
        """Every user, by name."""
        return [_user(r) for r in await self.pool.fetch(sql("list_users"))]

    # -- failed logins ----------------------------------------------------------

    async def start_login_attempt(
        self, username: str, ip: str, max_failures: int, window_s: float
    ) -> LoginAttempt:
        """Count a sign-in attempt of a username from an address, before its password is
        checked: allowed while fewer than ``max_failures`` failed within ``window_s``,
        and then recorded as a failure at once (``clear_login_failures`` forgets it if
        the password was right).

        Checking and recording are one step per username and address (an advisory lock
        held for a two-statement transaction), so of N concurrent attempts at most the
        remaining allowance gets through to the password check.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(sql("lock_login_key"), username, ip)
            row = await conn.fetchrow(
                sql("start_login_attempt"), username, ip, max_failures, window_s
            )
        assert row is not None  # an aggregate without GROUP BY always returns a row
        from vq_core.store.records.accounts import LoginAttempt

        return LoginAttempt(row["allowed"], row["n"], row["oldest_age_s"])

    async def clear_login_failures(self, username: str, ip: str) -> None:
        """Forget a username's failed logins from an address."""
        await self.pool.execute(sql("clear_login_failures"), username, ip)

    # -- API tokens -------------------------------------------------------------

    async def add_token(self, name: str, token_hash: str, role: str) -> TokenRecord | None:
        """Add a token by its hash; ``None`` when a live token already has this name."""
        row = await self.pool.fetchrow(sql("create_token"), name, token_hash, role)
        return _token(row) if row is not None else None

    async def use_token(self, token_hash: str) -> LiveToken | None:
        """The live token with this hash, if any, recording that it was used."""
        row = await self.pool.fetchrow(sql("get_token_by_hash"), token_hash)
        if row is None:
            return None
        await self.pool.execute(sql("touch_token"), row["id"])
        from vq_core.store.records.accounts import LiveToken

        return LiveToken(**dict(row))

    async def list_tokens(self) -> list[TokenRecord]:
        """Every token, revoked ones included."""
        return [_token(r) for r in await self.pool.fetch(sql("list_tokens"))]

    async def revoke_token(self, token_id: int | None, name: str | None) -> TokenRecord | None:
        """Revoke the live token with this id or this name; ``None`` if none matches."""
        row = await self.pool.fetchrow(sql("revoke_token"), token_id, name)
        return _token(row) if row is not None else None

    # -- shared secrets ---------------------------------------------------------

    async def ensure_app_secret(self, name: str, value: str) -> str | None:
        """Store ``value`` under ``name`` unless a secret of that name exists; the stored
        value either way, or ``None`` if a concurrent insert is not visible yet."""
        stored = await self.pool.fetchval(sql("ensure_app_secret"), name, value)
        return None if stored is None else str(stored)
