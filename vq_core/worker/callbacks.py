"""Completion callbacks: every worker process delivers the outbox.

The jobs table's trigger writes a delivery in the transaction that finishes a job
(migration 0012) and sends ``NOTIFY vq_callbacks``; every worker listens
(``notifications``) and has a periodic tick as the fallback, so the process that
finished a job need not be the one that tells the platform: a worker SIGKILLed right
after its completion commit leaves the row, and any other delivers it.

A delivery is claimed under a lease (``FOR UPDATE SKIP LOCKED``), POSTed once with
httpx, signed (``X-VQ-Timestamp``, ``X-VQ-Signature: sha256=<hex HMAC-SHA256 of
"<timestamp>.<body>">``, ``X-VQ-Delivery``: the id receivers de-duplicate by), and each
attempt is recorded. A 2xx delivers; anything else is retried with exponential backoff
up to ``callbacks.max_attempts``, then the delivery fails. Redirects are not followed,
and a URL whose origin is not in ``callbacks.allowed_origins`` (a row written by hand,
or a setting narrowed since) fails at once without a request. Nothing a receiver does
can stop the worker: every error is recorded or logged, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from typing import TYPE_CHECKING

from vq_core import db
from vq_core.config import CallbackSettings
from vq_core.redact import redact_urls
from vq_core.store import Store
from vq_core.store.callbacks import DELIVERED, FAILED, RETRIED, DueCallback
from vq_core.video_service import url_origin

# httpx (with its TLS context) is imported by the first delivery: a worker whose jobs
# carry no callback URL never loads it (about 9 MB of a worker's memory).
if TYPE_CHECKING:
    import httpx

log = logging.getLogger("vq.callbacks")

TIMESTAMP_HEADER = "X-VQ-Timestamp"
SIGNATURE_HEADER = "X-VQ-Signature"
DELIVERY_HEADER = "X-VQ-Delivery"
#: Deliveries one claim leases; they are sent concurrently.
BATCH = 20
#: Seconds a lease outlasts the attempt's timeout: room for recording the attempt.
LEASE_MARGIN = 10.0
_DETAIL_CHARS = 500


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-VQ-Signature`` value: ``sha256=`` and the hex HMAC-SHA256, keyed with
    ``secret``, of ``b"<timestamp>." + body``."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def encode_body(body: dict[str, object]) -> bytes:
    """The exact bytes POSTed (and signed): compact JSON, keys sorted."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def backoff(settings: CallbackSettings, attempt: int) -> float:
    """Seconds before the attempt after ``attempt`` (1-based): ``backoff`` doubling each
    time, at most ``max_backoff``."""
    return float(min(settings.max_backoff, settings.backoff * 2 ** (attempt - 1)))


class CallbackDeliverer:
    """Delivers due callbacks whenever woken (a notification, the tick, a retry's wait)."""

    def __init__(self, store: Store, settings: CallbackSettings, worker_id: str) -> None:
        self.store = store
        self.settings = settings
        self.worker_id = worker_id
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._timers: set[asyncio.TimerHandle] = set()

    def start(self) -> None:
        """Begin delivering (on the running loop) and look for due deliveries now."""
        self._task = asyncio.create_task(self._run(), name="vq-callbacks")
        self.wake()

    def wake(self) -> None:
        """Look for due deliveries soon (safe to call from any callback on the loop)."""
        self._wanted.set()

    async def tick(self) -> None:
        """The periodic fallback: a lost notification delays a delivery by one tick."""
        self.wake()

    async def close(self, timeout: float) -> None:
        """Stop within ``timeout`` seconds. A delivery cut short keeps its lease, which
        runs out; another process then sends it again (same ``X-VQ-Delivery``)."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=max(timeout, 0.0))
        if self._client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.aclose(), timeout=max(timeout, 0.1))

    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                await self.deliver_due()
            except db.DB_ERRORS as exc:
                log.warning("callback deliveries wait for the next tick: %s", exc)
            except Exception:
                log.exception("callback deliveries failed; the next tick tries again")

    async def deliver_due(self) -> int:
        """Send every due delivery, a batch at a time; how many were attempted."""
        lease = self.settings.timeout + LEASE_MARGIN
        total = 0
        while True:
            batch = await self.store.claim_callbacks(BATCH, lease)
            if not batch:
                return total
            total += len(batch)
            await asyncio.gather(*(self._deliver(due) for due in batch))

    async def _deliver(self, due: DueCallback) -> None:
        try:
            await self._attempt(due)
        except db.DB_ERRORS as exc:
            # The attempt went unrecorded; the lease runs out and it is sent again.
            log.warning("could not record callback %s attempt %d: %s", due.id, due.attempt, exc)
        except Exception:
            log.exception("callback %s attempt %d failed unexpectedly", due.id, due.attempt)

    async def _attempt(self, due: DueCallback) -> None:
        s = self.settings
        problem = self._refusal(due.url)
        if problem is not None:
            log.warning("callback %s of job %s not sent: %s", due.id, due.job_id, problem)
            await self._record(due, FAILED, detail=problem)
            return
        if s.secret is None:
            await self._retry_or_fail(due, None, "callbacks.secret is not set; not sent")
            return
        body = encode_body(due.body)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "vq-callbacks",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(s.secret, timestamp, body),
            DELIVERY_HEADER: str(due.id),
        }
        import httpx  # on first use: see the module's imports

        if self._client is None:
            # No redirects: a receiver must not point vq's requests somewhere else.
            self._client = httpx.AsyncClient(follow_redirects=False, timeout=self.settings.timeout)
        try:
            response = await self._client.post(due.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            await self._retry_or_fail(due, None, f"{type(exc).__name__}: {exc}"[:_DETAIL_CHARS])
            return
        code = response.status_code
        if 200 <= code < 300:
            await self._record(due, DELIVERED, status_code=code)
            log.info("callback %s of job %s delivered (%d)", due.id, due.job_id, code)
        elif response.is_redirect:
            where = redact_urls(response.headers.get("location", "?"))
            await self._retry_or_fail(
                due, code, f"HTTP {code} to {where}: redirects are not followed"
            )
        else:
            text = response.text[:200].strip()
            await self._retry_or_fail(due, code, f"HTTP {code}" + (f": {text}" if text else ""))

    def _refusal(self, url: str) -> str | None:
        try:
            origin = url_origin(url)
        except ValueError as exc:
            return f"not a callback URL ({exc})"
        import httpx  # url_origin has imported it: parsed as the request will be

        if httpx.URL(url).userinfo:
            return "the URL carries credentials; not sent"
        if origin not in self.settings.allowed_origins:
            return (
                f"{origin} is not an allowed callback origin "
                "(setting callbacks.allowed_origins); not sent"
            )
        return None

    async def _retry_or_fail(self, due: DueCallback, code: int | None, detail: str) -> None:
        if due.attempt >= self.settings.max_attempts:
            log.warning(
                "callback %s of job %s failed after %d attempts: %s",
                due.id,
                due.job_id,
                due.attempt,
                detail,
            )
            await self._record(due, FAILED, status_code=code, detail=detail)
            return
        delay = backoff(self.settings, due.attempt)
        await self._record(due, RETRIED, status_code=code, detail=detail, retry_in=delay)
        # Wake when the wait is over rather than at the next tick.
        timer = asyncio.get_running_loop().call_later(delay, self._timer_fired)
        self._timers.add(timer)

    def _timer_fired(self) -> None:
        now = asyncio.get_running_loop().time()
        self._timers = {t for t in self._timers if t.when() > now}
        self.wake()

    async def _record(
        self,
        due: DueCallback,
        outcome: str,
        *,
        status_code: int | None = None,
        detail: str | None = None,
        retry_in: float = 0.0,
    ) -> None:
        await self.store.record_callback_attempt(
            due,
            outcome,
            status_code=status_code,
            detail=detail,
            worker_id=self.worker_id,
            retry_in=retry_in,
        )
