"""Human-readable output of the CLI (``--json`` bypasses all of this)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from vq_core.models import Job, JobEvent


def _short(value: Any, width: int) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _subject(job: Job) -> str:
    return str(job.payload.get("question") or job.payload.get("topic") or "")


def print_jobs(jobs: Sequence[Job], next_cursor: str | None) -> None:
    """A table of jobs and, if there is more, how to get the next page."""
    if not jobs:
        click.echo("no jobs")
        return
    click.echo(f"{'ID':<36}  {'TYPE':<10} {'PRIORITY':<8} {'STATUS':<10} {'TRIES':<5} CREATED")
    for job in jobs:
        click.echo(
            f"{job.id}  {_short(job.job_type, 10):<10} {job.priority.label:<8} "
            f"{job.status.value:<10} {job.retry_count:<5} "
            f"{job.created_at:%Y-%m-%d %H:%M:%S}  {_short(_subject(job), 40)}"
        )
    if next_cursor:
        click.echo(f"more: --cursor {next_cursor}")


def print_job(job: Job, events: Sequence[JobEvent]) -> None:
    """One job in full, then its history."""
    for key, value in job.to_dict().items():
        if isinstance(value, dict):
            value = json.dumps(value, default=str)
        if key == "error" and job.error:
            value = f"{job.error.get('type')}: {job.error.get('message')}"
        click.echo(f"{key:>17}: {'' if value is None else value}")
    if job.error and job.error.get("stack"):
        click.echo("\nstack:\n" + str(job.error["stack"]).rstrip())
    click.echo("\nhistory:")
    for event in events:
        details = json.dumps(event.details, default=str) if event.details else ""
        click.echo(
            f"  {event.at:%Y-%m-%d %H:%M:%S.%f} {event.event:<16} "
            f"{event.worker_id or '':<24} {_short(details, 80)}"
        )


def print_stats(data: dict[str, Any]) -> None:
    """Queue statistics as a few readable lines."""
    by_status = data["by_status"]
    click.echo("jobs: " + ", ".join(f"{k} {v}" for k, v in by_status.items()))
    age = data["oldest_queued_age_s"]
    scheduled = data.get("scheduled", 0)
    later = f" (next {data['next_run_at']})" if scheduled and data.get("next_run_at") else ""
    # Only ready jobs are waiting: one scheduled for later does not age the queue.
    click.echo(
        f"depth: {data['depth']} ready, {scheduled} scheduled{later}; oldest ready job "
        + (f"waiting {age:.1f}s" if age is not None else "-")
    )
    for window, t in data["throughput"].items():
        rate = "-" if t["success_rate"] is None else f"{t['success_rate'] * 100:.1f}%"
        click.echo(
            f"last {window:>3}: {t['completed']} completed, {t['failed']} failed, "
            f"{t['per_minute']}/min, success {rate}"
        )
    d = data["duration_s"]
    if d["avg"] is not None:
        click.echo(
            f"duration: avg {d['avg']:.3f}s p50 {d['p50']:.3f}s "
            f"p95 {d['p95']:.3f}s p99 {d['p99']:.3f}s"
        )
    for job_type, counts in data["by_type"].items():
        click.echo(f"  {job_type}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for problem in data.get("types", []):
        # Types whose jobs wait for something other than a free worker.
        reason = problem["problem"]
        if problem["state"] == "paused":
            reason = "paused" + (f" (and {reason})" if reason else "")
        click.echo(f"{problem['job_type']}: {reason or problem['state']}")
