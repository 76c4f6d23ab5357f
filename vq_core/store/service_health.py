"""The latest health check of each video service (SQL in ``sql/queries/service_health.sql``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from vq_core.db.queries import sql


class ServiceHealthStore:
    """The methods on ``vq.service_health``; part of ``Store``."""

    pool: asyncpg.Pool

    async def record_service_health(
        self, service: str, healthy: bool, detail: str | None, job_types: Sequence[str]
    ) -> None:
        """Store the latest health check of a video service."""
        await self.pool.execute(
            sql("record_service_health"), service, healthy, detail, list(job_types)
        )

    async def list_service_health(self) -> list[dict[str, Any]]:
        """The latest health check of every service."""
        return [dict(r) for r in await self.pool.fetch(sql("list_service_health"))]
