"""Bulk actions: retry or cancel every job the job list's filters match (SQL in
``sql/queries/jobs.sql``, the same ``job_filter`` as the list)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

from vq_core.db.queries import sql
from vq_core.models import Actor, JobFilter, JobStatus
from vq_core.store.listing import filter_args
from vq_core.store.records import export

#: The statuses each bulk action applies to.
ACTIONABLE: dict[str, tuple[JobStatus, ...]] = {
    "retry": (JobStatus.FAILED, JobStatus.CANCELLED),
    "cancel": (JobStatus.QUEUED, JobStatus.RUNNING),
}


if TYPE_CHECKING:
    from vq_core.store.records.bulk import (
        BulkResult as BulkResult,
    )


def __getattr__(name: str) -> Any:
    # The records are made on first use (vq_core.store.records says why).
    return export("bulk", __name__, name)


class JobBulk:
    """Bulk retry and cancel; part of ``Store``."""

    pool: asyncpg.Pool

    async def count_actionable(self, filters: JobFilter, action: str) -> int:
        """How many jobs ``action`` (``retry`` or ``cancel``) would act on now."""
        statuses = [s.value for s in ACTIONABLE[action]]
        query = sql("count_jobs").format(filter=sql("job_filter"))
        count: int = await self.pool.fetchval(query, *filter_args(filters), statuses)
        return count

    async def bulk_retry(self, filters: JobFilter, actor: Actor) -> BulkResult:
        """Send every failed or cancelled match back to the queue with fresh retries."""
        query = sql("bulk_retry_jobs").format(filter=sql("job_filter"))
        acted: int = await self.pool.fetchval(query, *filter_args(filters), actor.to_dict())
        from vq_core.store.records.bulk import BulkResult

        return BulkResult("retry", acted)

    async def bulk_cancel(self, filters: JobFilter, actor: Actor) -> BulkResult:
        """Cancel every queued match; ask the workers of running matches to stop them."""
        query = sql("bulk_cancel_jobs").format(filter=sql("job_filter"))
        row = await self.pool.fetchrow(query, *filter_args(filters), actor.to_dict())
        assert row is not None  # an aggregate always answers one row
        from vq_core.store.records.bulk import BulkResult

        return BulkResult("cancel", row["acted"], row["running"])
