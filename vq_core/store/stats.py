"""Queue statistics: counts, depth, throughput, success rate and durations (SQL in
``sql/queries/stats.sql``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import asyncpg

from vq_core.db.queries import sql
from vq_core.models import JobStatus, Priority

WINDOWS = ("1m", "5m", "15m", "60m")
_MINUTES = {"1m": 1, "5m": 5, "15m": 15, "60m": 60}


def _rate(completed: int, failed: int) -> float | None:
    finished = completed + failed
    return round(completed / finished, 4) if finished else None


class StatsStore:
    """Aggregates over ``vq.jobs`` for the stats page, ``vq stats`` and metrics; part of
    ``Store``."""

    pool: asyncpg.Pool

    async def stats(self) -> dict[str, Any]:
        """Counts by status/type/priority, depth, oldest age, throughput, durations, as
        plain JSON: what the stats page, ``vq stats`` and the alert rules read."""
        async with self.pool.acquire() as conn:
            counts = await conn.fetch(sql("count_by_status_type_priority"))
            # The ready count is ready_depth's own statement, the one KEDA's ScaledObject
            # runs too, so vq_queue_depth and the autoscaler read one number.
            ready = await conn.fetchval(sql("ready_depth"))
            depth = await conn.fetchrow(sql("queue_depth"))
            windows = await conn.fetchrow(sql("finished_windows"))
        assert depth is not None and windows is not None  # aggregates always return a row
        by_status: Counter[str] = Counter({s.value: 0 for s in JobStatus})
        by_type: dict[str, Counter[str]] = {}
        by_priority: dict[str, Counter[str]] = {}
        for row in counts:
            by_status[row["status"]] += row["n"]
            by_type.setdefault(row["job_type"], Counter())[row["status"]] += row["n"]
            label = Priority(row["priority"]).label
            by_priority.setdefault(label, Counter())[row["status"]] += row["n"]
        throughput = {}
        for w in WINDOWS:
            completed, failed = windows[f"completed_{w}"], windows[f"failed_{w}"]
            throughput[w] = {
                "completed": completed,
                "failed": failed,
                "per_minute": round(completed / _MINUTES[w], 2),
                "success_rate": _rate(completed, failed),
            }
        pcts = windows["duration_pcts"] or [None, None, None]
        return {
            "total": sum(by_status.values()),
            "by_status": dict(by_status),
            "by_type": {k: dict(v) for k, v in sorted(by_type.items())},
            "by_priority": {k: dict(v) for k, v in by_priority.items()},
            "depth": ready,
            "queued": depth["queued"],
            "scheduled": depth["scheduled"],
            "next_run_at": depth["next_run_at"].isoformat() if depth["next_run_at"] else None,
            # Ready jobs only: one scheduled for later is not waiting.
            "oldest_queued_age_s": depth["oldest_age_s"],
            "throughput": throughput,
            "duration_s": {
                "avg": windows["avg_s"],
                "p50": pcts[0],
                "p95": pcts[1],
                "p99": pcts[2],
            },
        }

    async def throughput_series(self) -> list[dict[str, Any]]:
        """Completed and failed jobs per minute over the last hour."""
        rows = await self.pool.fetch(sql("throughput_series"))
        return [
            {"minute": r["minute"].isoformat(), "completed": r["completed"], "failed": r["failed"]}
            for r in rows
        ]
