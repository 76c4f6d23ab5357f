"""Per-job read tokens: what a student's page holds to watch one job's event stream
without an account.

A job's id alone is not a secret (it appears in URLs, logs and callbacks), so the
stream of a job also accepts ``?token=``, an HMAC-SHA256 of the job id under a key kept
in ``vq.app_secrets`` (created by the first instance that needs it, shared by every
instance behind a balancer). ``POST /api/v1/jobs`` returns it as ``read_token``. It
grants reading that one job's events, nothing else, and it does not expire: rotating
the key (deleting the ``job_read_token_key`` row) voids every token at once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import uuid

from starlette.requests import Request

from vq_core.store import Store
from vq_ui.auth import users

SECRET_NAME = "job_read_token_key"
_PURPOSE = b"vq-job-read:"


def make_token(key: str, job_id: uuid.UUID) -> str:
    """The read token of ``job_id`` under ``key`` (43 URL-safe characters)."""
    digest = hmac.new(key.encode(), _PURPOSE + str(job_id).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_matches(key: str, job_id: uuid.UUID, token: str) -> bool:
    """Whether ``token`` is ``job_id``'s (in constant time)."""
    return hmac.compare_digest(make_token(key, job_id).encode(), token.encode())


class ReadTokens:
    """Makes and checks read tokens with the shared key, read once per process."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._key: str | None = None
        self._lock = asyncio.Lock()

    async def key(self) -> str:
        """The shared key, created in the database by the first instance."""
        if self._key is None:
            async with self._lock:
                if self._key is None:
                    self._key = await users.shared_secret(self.store, SECRET_NAME)
        return self._key

    async def token_for(self, job_id: uuid.UUID) -> str:
        """The read token of ``job_id``."""
        return make_token(await self.key(), job_id)

    async def check(self, job_id: uuid.UUID, token: str) -> bool:
        """Whether ``token`` lets its holder read ``job_id``'s events."""
        if not token or len(token) > 100 or not token.isascii():
            return False
        return token_matches(await self.key(), job_id, token)


def read_tokens(request: Request) -> ReadTokens:
    """The app's read tokens (made on first use, kept in ``app.state``)."""
    state = request.app.state
    tokens = getattr(state, "vq_read_tokens", None)
    if not isinstance(tokens, ReadTokens):
        tokens = ReadTokens(state.vq_store)
        state.vq_read_tokens = tokens
    return tokens
