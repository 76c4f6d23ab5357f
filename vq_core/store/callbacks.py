"""Completion callbacks: the outbox of deliveries and every attempt (SQL in
``sql/queries/callbacks.sql``).

The jobs table's trigger (migration 0012) writes a delivery in the transaction that
finishes a job with a callback URL; nothing here creates one. Deliverers claim due
deliveries under a lease (``claim_callbacks``), record each attempt
(``record_callback_attempt``), and people read a job's deliveries
(``job_callbacks``) or send one again (``redeliver_callback``).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import asyncpg

from vq_core.db.queries import sql
from vq_core.errors import JobNotFound
from vq_core.models import Actor
from vq_core.store.records import export

DELIVERED = "delivered"
RETRIED = "retried"
FAILED = "failed"
REDELIVERED = "redelivered"


if TYPE_CHECKING:
    from vq_core.store.records.callbacks import (
        CallbackAttempt as CallbackAttempt,
    )
    from vq_core.store.records.callbacks import (
        CallbackDelivery as CallbackDelivery,
    )
    from vq_core.store.records.callbacks import (
        DueCallback as DueCallback,
    )


def __getattr__(name: str) -> Any:
    # The records are made on first use (vq_core.store.records says why).
    return export("callbacks", __name__, name)


def _delivery(row: asyncpg.Record) -> CallbackDelivery:
    from vq_core.store.records.callbacks import CallbackAttempt, CallbackDelivery

    data = dict(row)
    data["attempt_log"] = [CallbackAttempt(**a) for a in data["attempt_log"]]
    return CallbackDelivery(**data)


class CallbackStore:
    """The methods on ``vq.callback_deliveries`` and ``vq.callback_attempts``; part of
    ``Store``."""

    pool: asyncpg.Pool

    async def claim_callbacks(self, limit: int, lease: float) -> list[DueCallback]:
        """Lease up to ``limit`` due deliveries for ``lease`` seconds (``FOR UPDATE SKIP
        LOCKED``: every process may claim at once). Each claim counts as an attempt begun."""
        rows = await self.pool.fetch(sql("claim_callbacks"), limit, lease)
        from vq_core.store.records.callbacks import DueCallback

        return [DueCallback(r["id"], r["job_id"], r["url"], r["body"], r["attempts"]) for r in rows]

    async def record_callback_attempt(
        self,
        due: DueCallback,
        outcome: str,
        *,
        status_code: int | None = None,
        detail: str | None = None,
        worker_id: str | None = None,
        retry_in: float = 0.0,
    ) -> None:
        """Keep an attempt and move the delivery on: ``delivered``, ``failed``, or
        ``retried`` (pending again after ``retry_in`` seconds)."""
        if outcome not in (DELIVERED, RETRIED, FAILED):
            raise ValueError(f"not an attempt's outcome: {outcome!r}")
        await self.pool.execute(
            sql("record_callback_attempt"),
            due.id,
            due.attempt,
            outcome,
            status_code,
            detail,
            worker_id,
            retry_in,
        )

    async def job_callbacks(self, job_id: uuid.UUID) -> list[CallbackDelivery]:
        """A job's deliveries, oldest first, each with its attempts."""
        return [_delivery(r) for r in await self.pool.fetch(sql("job_callbacks"), job_id)]

    async def redeliver_callback(
        self, job_id: uuid.UUID, delivery_id: uuid.UUID, actor: Actor
    ) -> CallbackDelivery:
        """Send a delivery again, same id and body, with a fresh set of attempts; the
        request is kept among its attempts. ``JobNotFound`` when the job has no such
        delivery. The caller checks that ``actor`` may (an admin)."""
        async with self.pool.acquire() as conn, conn.transaction():
            found = await conn.fetchval(
                sql("redeliver_callback"), job_id, delivery_id, actor.name, actor.via
            )
            if found is None:
                raise JobNotFound(f"job {job_id} has no callback delivery {delivery_id}")
            await conn.execute(sql("notify_callbacks"))
        return next(d for d in await self.job_callbacks(job_id) if d.id == delivery_id)
