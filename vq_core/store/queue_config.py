"""Per job type configuration (retries, timeout, service, caps, pause), per service caps,
and the record of who changed them (SQL in ``sql/queries/queue_config.sql``).

Every change goes through ``update_queue_config`` or ``set_service_limit``: they check
the new values (``vq_core.validation``), write them and a ``vq.config_changes`` row in
one transaction, and the tables' triggers tell the workers to reload at once.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import asyncpg

from vq_core.db.queries import sql
from vq_core.models import Actor, QueueConfig
from vq_core.queue_types import TypeState, describe_types
from vq_core.store.records import export

# The checks are imported by the methods that change a configuration: ``vq stats``, which
# only reads it, does not load the validation models.
if TYPE_CHECKING:
    from vq_core.store.records.queue_config import (
        ConfigChange as ConfigChange,
    )
    from vq_core.store.records.queue_config import (
        ServiceLimit as ServiceLimit,
    )
    from vq_core.validation import QueueConfigPatch


def __getattr__(name: str) -> Any:
    # The records are made on first use (vq_core.store.records says why).
    return export("queue_config", __name__, name)


def _upsert_args(config: QueueConfig, actor: str | None) -> tuple[Any, ...]:
    return (
        config.job_type,
        config.max_retries,
        config.timeout_s,
        config.service,
        config.concurrency,
        config.paused,
        config.max_running,
        config.max_running_per_group,
        actor,
        config.callback_url,
    )


class QueueConfigStore:
    """The methods on ``vq.job_queue_config``, ``vq.service_limits`` and
    ``vq.config_changes``; part of ``Store``."""

    pool: asyncpg.Pool
    default_max_retries: int

    async def set_queue_config(self, config: QueueConfig) -> None:
        """Create or replace a job type's configuration; ``InvalidInput`` names a setting
        a worker could not use (a timeout that is NaN or Infinity, say)."""
        from vq_core.validation import check_queue_config

        check_queue_config(config)
        await self.pool.execute(sql("upsert_queue_config"), *_upsert_args(config, None))

    async def update_queue_config(
        self, job_type: str, patch: QueueConfigPatch, actor: Actor, default_timeout: float
    ) -> QueueConfig:
        """Change the settings ``patch`` names for ``job_type`` (a type without a row
        starts from the defaults: ``default_timeout`` and the store's retry limit), and
        record who did; returns the new configuration."""
        from vq_core.validation import check_queue_config

        changes = patch.changes()
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(sql("lock_queue_config"), job_type)
            before = (
                QueueConfig(**dict(row))
                if row
                else QueueConfig(
                    job_type, max_retries=self.default_max_retries, timeout_s=default_timeout
                )
            )
            after = dataclasses.replace(before, **changes)
            check_queue_config(after)
            diff = {
                name: [getattr(before, name), value]
                for name, value in changes.items()
                if getattr(before, name) != value
            }
            if row is not None and not diff:
                return before
            await conn.execute(sql("upsert_queue_config"), *_upsert_args(after, actor.name))
            await conn.execute(
                sql("record_config_change"), f"type:{job_type}", actor.name, actor.via, diff
            )
            stored = await conn.fetchrow(sql("lock_queue_config"), job_type)
        assert stored is not None  # written just above, in this transaction
        return QueueConfig(**dict(stored))

    async def list_queue_config(self) -> dict[str, QueueConfig]:
        """Every configured job type."""
        rows = await self.pool.fetch(sql("list_queue_config"))
        return {r["job_type"]: QueueConfig(**dict(r)) for r in rows}

    async def list_service_limits(self) -> dict[str, int]:
        """Each capped service's cluster-wide cap of running jobs."""
        rows = await self.pool.fetch(sql("list_service_limits"))
        return {r["service"]: r["max_running"] for r in rows}

    async def service_limits(self) -> list[ServiceLimit]:
        """Every service cap with who set it last."""
        rows = await self.pool.fetch(sql("list_service_limits"))
        from vq_core.store.records.queue_config import ServiceLimit

        return [ServiceLimit(**dict(r)) for r in rows]

    async def set_service_limit(self, service: str, max_running: int | None, actor: Actor) -> None:
        """Cap ``service``'s running jobs across every worker (``None``: no cap), and
        record who did. The caller checks ``max_running`` (``ServiceLimitRequest``)."""
        from vq_core.validation import check_text

        check_text(service, "service")
        async with self.pool.acquire() as conn, conn.transaction():
            before = await conn.fetchval(sql("lock_service_limit"), service)
            if before == max_running:
                return
            if max_running is None:
                await conn.execute(sql("clear_service_limit"), service)
            else:
                await conn.execute(sql("set_service_limit"), service, max_running, actor.name)
            await conn.execute(
                sql("record_config_change"),
                f"service:{service}",
                actor.name,
                actor.via,
                {"max_running": [before, max_running]},
            )

    async def type_states(self, default_timeout: float) -> list[TypeState]:
        """Every job type with its settings, counts, service and state (see
        ``vq_core.queue_types``); a type without a row shows the defaults."""
        async with self.pool.acquire() as conn:
            configs = await conn.fetch(sql("list_queue_config"))
            counts = await conn.fetch(sql("type_counts"))
            health = await conn.fetch(sql("list_service_health"))
            limits = await conn.fetch(sql("list_service_limits"))
        return describe_types(
            {r["job_type"]: QueueConfig(**dict(r)) for r in configs},
            {r["job_type"]: dict(r) for r in counts},
            [dict(r) for r in health],
            {r["service"]: r["max_running"] for r in limits},
            QueueConfig("", max_retries=self.default_max_retries, timeout_s=default_timeout),
        )

    async def config_changes(
        self, subject: str | None = None, limit: int = 50
    ) -> list[ConfigChange]:
        """The latest settings changes, newest first (``subject``: ``type:NAME`` or
        ``service:NAME`` only)."""
        rows = await self.pool.fetch(sql("list_config_changes"), subject, limit)
        from vq_core.store.records.queue_config import ConfigChange

        return [ConfigChange(**dict(r)) for r in rows]
