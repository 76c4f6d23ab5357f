"""``Store``: vq's one door to the database, made of one part per concern.

Each base class holds the methods of one table or concern, next to its SQL file in
``sql/queries/``: jobs (``JobStore``), the job list (``JobListing``), bulk actions
(``JobBulk``), the first version's import (``JobImport``), workers, per-type
configuration, service health, statistics, accounts,
sessions, alerts, alert sinks and completion callbacks.
They share the pool; ``Store`` adds only what is about the database as a whole.
"""

from __future__ import annotations

import asyncpg

from vq_core.db import migrations
from vq_core.store.accounts import AccountStore
from vq_core.store.alert_sinks import AlertSinkStore
from vq_core.store.alerts import AlertStore
from vq_core.store.bulk import JobBulk
from vq_core.store.callbacks import CallbackStore
from vq_core.store.events import EventStreamStore
from vq_core.store.importing import JobImport
from vq_core.store.jobs import JobStore
from vq_core.store.listing import JobListing
from vq_core.store.queue_config import QueueConfigStore
from vq_core.store.service_health import ServiceHealthStore
from vq_core.store.sessions import SessionStore
from vq_core.store.stats import StatsStore
from vq_core.store.workers import WorkerStore


class Store(
    JobStore,
    JobListing,
    JobBulk,
    JobImport,
    WorkerStore,
    QueueConfigStore,
    ServiceHealthStore,
    StatsStore,
    AccountStore,
    SessionStore,
    AlertStore,
    AlertSinkStore,
    CallbackStore,
    EventStreamStore,
):
    """vq's data access over an asyncpg pool: one method per query, returning models."""

    def __init__(self, pool: asyncpg.Pool, default_max_retries: int = 3) -> None:
        self.pool = pool
        self.default_max_retries = default_max_retries

    async def close(self) -> None:
        """Close the pool."""
        await self.pool.close()

    async def pending_migrations(self) -> list[migrations.Migration]:
        """The migrations this code knows and the database has not applied yet."""
        async with self.pool.acquire() as conn:
            return await migrations.pending_migrations(conn)
