"""Users, API tokens, login failures and shared secrets: the functions behind the login
page, the API's auth and the ``vq users`` / ``vq tokens`` commands (sessions are in
``vq_ui.auth.sessions``).

Passwords are hashed with argon2id; API tokens are long random strings, so they are
stored as their sha256 (nothing to brute-force) and shown in plain text only once.
The rows are kept by the store (``vq_core.store.accounts``); this module hashes,
checks names and roles, and presents the rows. ``TokenCache`` keeps the tokens a
process verified for a second or so (``token_cache_s``), so a busy client costs one
lookup a second rather than two queries a request; see its docstring for revocation.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from vq_core.errors import InvalidInput
from vq_core.store import Store
from vq_core.store.accounts import TokenRecord, UserRecord
from vq_ui.auth.roles import Role, User

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
TOKEN_NAME = re.compile(r"^[A-Za-z0-9_.@:-]{1,64}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
TOKEN_PREFIX = "vq_"

# argon2-cffi's defaults: argon2id, RFC 9106's low-memory profile.
_hasher = PasswordHasher()


class AlreadyExists(InvalidInput):
    """A user or live token with this name exists already."""


class UnknownName(LookupError):
    """No user or token has this name."""


@dataclass(frozen=True)
class UserInfo:
    """A row of ``vq.users`` without its password hash."""

    id: int
    username: str
    role: Role
    created_at: datetime
    disabled: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "id": self.id,
            "username": self.username,
            "role": self.role.value,
            "created_at": self.created_at.isoformat(),
            "disabled": self.disabled,
        }


@dataclass(frozen=True)
class TokenInfo:
    """A row of ``vq.api_tokens`` without its hash."""

    id: int
    name: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.value,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked": self.revoked,
        }


@dataclass(frozen=True)
class NewToken:
    """A token just created: ``token`` is its only appearance in plain text."""

    info: TokenInfo
    token: str


def _user_info(rec: UserRecord) -> UserInfo:
    return UserInfo(rec.id, rec.username, Role(rec.role), rec.created_at, rec.disabled)


def _token_info(rec: TokenRecord) -> TokenInfo:
    return TokenInfo(
        rec.id, rec.name, Role(rec.role), rec.created_at, rec.last_used_at, rec.revoked
    )


def parse_role(value: str | Role) -> Role:
    """A role from its name; ``InvalidInput`` names the field otherwise."""
    try:
        return Role(str(value).strip().lower())
    except ValueError:
        raise InvalidInput(f"role: use one of {', '.join(r.value for r in Role)}") from None


def _check_username(username: str) -> str:
    if not USERNAME.match(username):
        raise InvalidInput("username: 1-64 letters, digits or . _ @ -")
    return username


def _check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"password: must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def generate_password() -> str:
    """A random password for a new account (about 120 bits)."""
    return secrets.token_urlsafe(15)


def hash_password(password: str) -> str:
    """The argon2id hash of a password, in PHC string form."""
    return _hasher.hash(password)


def hash_token(token: str) -> str:
    """The stored form of an API token."""
    return hashlib.sha256(token.encode()).hexdigest()


@cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def _verify_hash(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# -- users -----------------------------------------------------------------------


async def create_user(store: Store, username: str, password: str, role: str | Role) -> UserInfo:
    """Add a user; ``AlreadyExists`` if the name is taken, ``InvalidInput`` for bad fields."""
    _check_username(username)
    parsed = parse_role(role)
    hashed = await asyncio.to_thread(hash_password, _check_password(password))
    rec = await store.add_user(username, hashed, parsed.value)
    if rec is None:
        raise AlreadyExists(f"username: a user named {username!r} exists already")
    return _user_info(rec)


async def update_user(
    store: Store,
    username: str,
    *,
    password: str | None = None,
    role: str | Role | None = None,
    disabled: bool | None = None,
) -> UserInfo:
    """Change a user's password, role or disabled flag; ``UnknownName`` if there is none.

    A new password, another role or disabling the account ends the user's sessions at
    once (in the same statement); re-enabling brings none of them back.
    """
    parsed = parse_role(role).value if role is not None else None
    hashed = None
    if password is not None:
        hashed = await asyncio.to_thread(hash_password, _check_password(password))
    rec = await store.change_user(username, hashed, parsed, disabled)
    if rec is None:
        raise UnknownName(f"no user named {username!r}")
    return _user_info(rec)


async def set_password(store: Store, username: str, password: str) -> UserInfo:
    """Give a user a new password (which signs out their sessions)."""
    return await update_user(store, username, password=password)


async def list_users(store: Store) -> list[UserInfo]:
    """Every user, by name."""
    return [_user_info(r) for r in await store.list_users()]


async def verify_password(store: Store, username: str, password: str) -> User | None:
    """The user if the password is right and the account enabled, else ``None``.

    An unknown name costs as much as a wrong password, so timing does not reveal
    which usernames exist.
    """
    login = await store.user_login(username)
    stored = login.password_hash if login is not None else _dummy_hash()
    ok = await asyncio.to_thread(_verify_hash, stored, password[:MAX_PASSWORD])
    if login is None or not ok or login.disabled:
        return None
    if _hasher.check_needs_rehash(stored):
        # The same password, hashed with today's parameters: not a change, so the
        # user's other sessions stay.
        rehashed = await asyncio.to_thread(hash_password, password)
        await store.rehash_password(login.username, rehashed)
    return User(login.username, Role(login.role), "session")


async def ensure_first_admin(store: Store, username: str = "admin") -> str | None:
    """On an empty users table, create an admin with a random password and return the
    password (the caller prints it once); ``None`` when any user exists already.

    Safe when several instances start at once: only one insert can succeed.
    """
    if await store.any_user():
        return None
    password = generate_password()
    hashed = await asyncio.to_thread(hash_password, password)
    created = await store.add_first_admin(username, hashed)
    return password if created else None


# -- API tokens --------------------------------------------------------------------


async def create_token(store: Store, name: str, role: str | Role) -> NewToken:
    """Create an API token; its plain text is in the answer and nowhere else."""
    if not TOKEN_NAME.match(name):
        raise InvalidInput("name: 1-64 letters, digits or . _ @ : -")
    parsed = parse_role(role)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    rec = await store.add_token(name, hash_token(token), parsed.value)
    if rec is None:
        raise AlreadyExists(f"name: a live token named {name!r} exists already")
    return NewToken(_token_info(rec), token)


async def list_tokens(store: Store) -> list[TokenInfo]:
    """Every token, revoked ones included."""
    return [_token_info(r) for r in await store.list_tokens()]


async def revoke_token(store: Store, id_or_name: int | str) -> TokenInfo:
    """Revoke a live token by id or name; ``UnknownName`` if none matches."""
    text = str(id_or_name)
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    token_id = int(text) if text.isascii() and text.isdigit() else None
    if token_id is not None and not 0 < token_id < 2**63:
        raise UnknownName(f"no live token {id_or_name!r}")  # beyond bigint: no such id
    name = None if token_id is not None else text
    rec = await store.revoke_token(token_id, name)
    if rec is None:
        raise UnknownName(f"no live token {id_or_name!r}")
    forget_verified_tokens()
    return _token_info(rec)


async def verify_token(store: Store, token: str) -> User | None:
    """The token's identity if it is live, else ``None``; records when it was last used."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    live = await store.use_token(hash_token(token))
    if live is None:
        return None
    return User(live.name, Role(live.role), "token")


# Bumped by every revocation in this process: each TokenCache drops what it verified
# before (entries carry the generation they were verified in).
_revocations = 0


def forget_verified_tokens() -> None:
    """Make every ``TokenCache`` of this process verify each token again on its next use
    (called by ``revoke_token``, so a revocation made here takes effect at once)."""
    global _revocations
    _revocations += 1


class TokenCache:
    """Tokens verified in the database, kept by their sha256 for ``ttl_s`` seconds.

    Only live tokens are kept (a wrong or revoked one is looked up every time, so a
    token created elsewhere works at once), never their plain text, at most
    ``max_entries`` of them. Revocation: one made in this process (``revoke_token``:
    the API's ``DELETE /api/v1/tokens/{id}``) empties the cache at once; one made by
    another process (``vq tokens revoke``, another instance behind the balancer) is
    seen here when the entry expires, within ``ttl_s``. A lookup that was under way
    during a revocation here is not kept. ``ttl_s`` 0: every request is looked up.
    """

    def __init__(self, store: Store, ttl_s: float, max_entries: int = 1024) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        # token hash -> (the token's identity, monotonic expiry, revocation generation)
        self._verified: dict[str, tuple[User, float, int]] = {}
        # One database lookup per hash at a time; concurrent requests share it, unless
        # it began before a revocation here: (hash, generation) -> the lookup.
        self._pending: dict[tuple[str, int], asyncio.Task[User | None]] = {}

    async def verify(self, token: str) -> User | None:
        """The token's identity if it is live (as of at most ``ttl_s`` ago), else ``None``."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        if self.ttl_s <= 0:
            return await verify_token(self.store, token)
        token_hash = hash_token(token)
        entry = self._verified.get(token_hash)
        if entry is not None:
            user, expires, generation = entry
            if generation == _revocations and time.monotonic() < expires:
                return user
            del self._verified[token_hash]
        key = (token_hash, _revocations)
        task = self._pending.get(key)
        if task is None:
            task = asyncio.ensure_future(self._look_up(token_hash))
            self._pending[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        # Shielded: a client that hangs up does not cancel the others' shared lookup.
        return await asyncio.shield(task)

    def _finished(self, key: tuple[str, int], task: asyncio.Task[User | None]) -> None:
        self._pending.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: its waiters (if any are left) got it raised

    async def _look_up(self, token_hash: str) -> User | None:
        generation, started = _revocations, time.monotonic()
        # The store's query, as verify_token runs it (it also records last_used_at).
        live = await self.store.use_token(token_hash)
        if live is None:
            return None
        user = User(live.name, Role(live.role), "token")
        if generation == _revocations:
            if len(self._verified) >= self.max_entries:
                self._verified.clear()  # rare (that many live tokens in use): start over
            # From the lookup's start: the row may be older than its answer.
            self._verified[token_hash] = (user, started + self.ttl_s, generation)
        return user


# -- login rate limiting and shared secrets -----------------------------------------


async def admit_login_attempt(
    store: Store, username: str, ip: str, max_failures: int, window_s: float
) -> float:
    """Admit a sign-in attempt of this username from this address to the password check,
    or not: 0 when it may go on (it counts as a failure from now on, until
    ``clear_login_failures``), else the seconds until it may try again.

    The check and the count are one atomic step in the database, so of N concurrent
    attempts at most ``max_failures`` reach the password check within the window.
    """
    attempt = await store.start_login_attempt(username, ip, max_failures, window_s)
    if attempt.allowed:
        return 0.0
    # At least one failure was counted (max_failures >= 1), so there is an oldest one.
    assert attempt.oldest_age_s is not None
    return max(1.0, window_s - float(attempt.oldest_age_s))


async def clear_login_failures(store: Store, username: str, ip: str) -> None:
    """Forget a username's failures from an address after it signed in."""
    await store.clear_login_failures(username, ip)


async def shared_secret(store: Store, name: str) -> str:
    """A secret shared by every app instance, created by whichever asks first."""
    for _ in range(3):
        value = await store.ensure_app_secret(name, secrets.token_urlsafe(48))
        if value is not None:
            return value
        # A concurrent first start inserted it after our snapshot: read it again.
    raise RuntimeError(f"could not read or create the app secret {name!r}")
