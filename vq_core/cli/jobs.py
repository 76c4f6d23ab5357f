"""``vq jobs``: list, show, cancel and retry jobs, one or every match of the filters."""

from __future__ import annotations

from typing import Any

import click

from vq_core.cli.common import (
    async_command,
    cli_actor,
    emit_json,
    job_id_arg,
    json_option,
    with_runtime,
)
from vq_core.cli.output import print_job, print_jobs
from vq_core.models import Job, JobFilter, JobStatus, Priority
from vq_core.runtime import Runtime


@click.group()
def jobs() -> None:
    """List, show, cancel and retry jobs."""


@jobs.command("list")
@click.option("--status", type=click.Choice([s.value for s in JobStatus]))
@click.option("--type", "job_type")
@click.option("--priority", type=click.Choice([p.label for p in Priority]))
@click.option("--search", help="Text in the question/topic, or a job id.")
@click.option("--sort", default="-created_at", show_default=True)
@click.option("--limit", default=20, type=click.IntRange(1, 500), show_default=True)
@click.option("--cursor", help="Cursor from the previous page.")
@json_option
@async_command
async def jobs_list(
    status: str | None,
    job_type: str | None,
    priority: str | None,
    search: str | None,
    sort: str,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List jobs, newest first, a page at a time."""
    filters = JobFilter(
        status=JobStatus(status) if status else None,
        job_type=job_type,
        priority=Priority.parse(priority) if priority else None,
        text=search,
    )
    page = await with_runtime(lambda rt: rt.store.list_jobs(filters, sort, cursor, limit))
    if as_json:
        emit_json({"jobs": [j.to_dict() for j in page.jobs], "next_cursor": page.next_cursor})
    else:
        print_jobs(page.jobs, page.next_cursor)


@jobs.command("show")
@click.argument("job_id")
@json_option
@async_command
async def jobs_show(job_id: str, as_json: bool) -> None:
    """Show one job with its history."""
    jid = job_id_arg(job_id)

    async def fetch(rt: Runtime) -> tuple[Any, Any]:
        return await rt.store.get_job(jid), await rt.store.get_events(jid)

    job, events = await with_runtime(fetch)
    if as_json:
        emit_json({**job.to_dict(), "events": [e.to_dict() for e in events]})
    else:
        print_job(job, events)


@jobs.command("cancel")
@click.argument("job_id")
@json_option
def jobs_cancel(job_id: str, as_json: bool) -> None:
    """Cancel a queued job, or ask the worker of a running job to stop it."""
    _act_on_job(job_id, "cancel", as_json)


@jobs.command("retry")
@click.argument("job_id")
@json_option
def jobs_retry(job_id: str, as_json: bool) -> None:
    """Send a failed or cancelled job back to the queue."""
    _act_on_job(job_id, "retry", as_json)


@async_command
async def _act_on_job(job_id: str, action: str, as_json: bool) -> None:
    jid = job_id_arg(job_id)

    async def act(rt: Runtime) -> Job:
        method = rt.store.cancel if action == "cancel" else rt.store.retry
        return await method(jid, actor=cli_actor())

    job = await with_runtime(act)
    if as_json:
        emit_json(job.to_dict())
    elif job.status is JobStatus.RUNNING:
        click.echo(f"{job.id} cancel requested")
    else:
        click.echo(f"{job.id} {job.status.value}")
