"""Per job type configuration: retries, timeout, service, concurrency, pause (SQL in
``sql/queries/queue_config.sql``)."""

from __future__ import annotations

import asyncpg

from vq_core.db.queries import sql
from vq_core.models import QueueConfig
from vq_core.validation import check_queue_config


class QueueConfigStore:
    """The methods on ``vq.job_queue_config``; part of ``Store``."""

    pool: asyncpg.Pool

    async def set_queue_config(self, config: QueueConfig) -> None:
        """Create or replace a job type's configuration; ``InvalidInput`` names a setting
        a worker could not use (a timeout that is NaN or Infinity, say)."""
        check_queue_config(config)
        await self.pool.execute(
            sql("upsert_queue_config"),
            config.job_type,
            config.max_retries,
            config.timeout_s,
            config.service,
            config.concurrency,
            config.paused,
        )

    async def list_queue_config(self) -> dict[str, QueueConfig]:
        """Every configured job type."""
        rows = await self.pool.fetch(sql("list_queue_config"))
        return {r["job_type"]: QueueConfig(**dict(r)) for r in rows}
