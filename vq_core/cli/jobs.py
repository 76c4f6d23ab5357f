"""``vq jobs``: list, show, cancel and retry jobs, one or every match of the filters.

``filter_options`` and ``job_filter`` are the one definition of the list's filters:
``vq jobs list``, ``vq jobs retry`` and ``vq jobs cancel`` take the same ones, as the
API's list and bulk routes do.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from vq_core.cli.common import (
    UsageProblem,
    async_command,
    cli_actor,
    emit_json,
    job_id_arg,
    json_option,
    with_runtime,
)
from vq_core.cli.output import print_job, print_jobs
from vq_core.models import ErrorCategory, Job, JobFilter, JobStatus, Priority
from vq_core.runtime import Runtime

if TYPE_CHECKING:
    from vq_core.store.bulk import BulkResult

#: The filter options' parameter names, in the order ``filter_options`` declares them.
_FILTER_PARAMS = (
    "status",
    "job_type",
    "priority",
    "category",
    "service",
    "group_key",
    "since",
    "until",
    "search",
)


def filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the job list's filters to a command; it receives them as one ``filters``
    argument, a ``JobFilter`` (a bad time exits 2 naming the option)."""
    options = [
        click.option("--status", type=click.Choice([s.value for s in JobStatus])),
        click.option("--type", "job_type", help="Job type."),
        click.option("--priority", type=click.Choice([p.label for p in Priority])),
        click.option(
            "--category",
            type=click.Choice([c.value for c in ErrorCategory], case_sensitive=False),
            help="Error category of the latest failure.",
        ),
        click.option("--service", help="Service of the latest attempt."),
        click.option("--group", "group_key", metavar="KEY", help="Group key (e.g. the student)."),
        click.option("--since", metavar="TIME", help="Created at or after (ISO time with zone)."),
        click.option("--until", metavar="TIME", help="Created before (ISO time with zone)."),
        click.option("--search", help="Text in the question/topic, or a job id."),
    ]

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in _FILTER_PARAMS}
        return func(filters=job_filter(**values), **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def job_filter(
    status: str | None = None,
    job_type: str | None = None,
    priority: str | None = None,
    category: str | None = None,
    service: str | None = None,
    group_key: str | None = None,
    since: str | None = None,
    until: str | None = None,
    search: str | None = None,
) -> JobFilter:
    """The ``JobFilter`` of the filter options' values (``None``: not given)."""
    return JobFilter(
        status=JobStatus(status) if status else None,
        job_type=job_type,
        priority=Priority.parse(priority) if priority else None,
        text=search if search and search.strip() else None,
        category=ErrorCategory(category.upper()) if category else None,
        service=service,
        group_key=group_key,
        created_after=_time("--since", since),
        created_before=_time("--until", until),
    )


def _time(option: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageProblem(f"{option}: not an ISO time: {text!r}") from None
    if value.tzinfo is None:
        # As run_at: a time without a zone means different instants on different hosts.
        raise UsageProblem(f"{option}: needs a time zone (e.g. 2026-01-01T12:00:00Z)")
    return value


@click.group()
def jobs() -> None:
    """List, show, cancel and retry jobs."""


@jobs.command("list")
@filter_options
@click.option("--sort", default="-created_at", show_default=True)
@click.option("--limit", default=20, type=click.IntRange(1, 500), show_default=True)
@click.option("--cursor", help="Cursor from the previous page.")
@json_option
@async_command
async def jobs_list(
    filters: JobFilter,
    sort: str,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List jobs, newest first, a page at a time."""
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


def _bulk_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = json_option(func)
    func = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")(func)
    func = click.option(
        "--all", "all_jobs", is_flag=True, help="Act on every job when no filter is given."
    )(func)
    func = filter_options(func)
    return click.argument("job_id", required=False)(func)


@jobs.command("cancel")
@_bulk_options
def jobs_cancel(
    job_id: str | None, filters: JobFilter, all_jobs: bool, yes: bool, as_json: bool
) -> None:
    """Cancel a queued job, or ask the worker of a running job to stop it.

    With filters instead of JOB_ID: cancel every queued or running match, after
    showing the count and asking (``--yes`` skips the question). No filter at all
    is refused unless ``--all`` is given.
    """
    _act(job_id, filters, all_jobs, yes, as_json, "cancel")


@jobs.command("retry")
@_bulk_options
def jobs_retry(
    job_id: str | None, filters: JobFilter, all_jobs: bool, yes: bool, as_json: bool
) -> None:
    """Send a failed or cancelled job back to the queue.

    With filters instead of JOB_ID: retry every failed or cancelled match, after
    showing the count and asking (``--yes`` skips the question). No filter at all
    is refused unless ``--all`` is given.
    """
    _act(job_id, filters, all_jobs, yes, as_json, "retry")


def _act(
    job_id: str | None,
    filters: JobFilter,
    all_jobs: bool,
    yes: bool,
    as_json: bool,
    action: str,
) -> None:
    if job_id is not None:
        if not filters.is_empty() or all_jobs:
            raise UsageProblem(f"give a JOB_ID or filters to {action}, not both")
        _act_on_job(job_id, action, as_json)
        return
    if filters.is_empty() and not all_jobs:
        raise UsageProblem(
            f"no filter given: name the jobs to {action} (--status, --type, --category, ...), "
            "or give --all to act on every job"
        )
    if not yes:
        count = _count(filters, action)
        if count == 0:
            from vq_core.store.bulk import BulkResult

            _print_bulk(BulkResult(action, 0), as_json)
            return
        # The question goes to stderr, so that --json output stays parseable.
        try:
            confirmed = click.confirm(
                f"{action.capitalize()} {_jobs(count)}?", default=False, err=True
            )
        except click.Abort:  # end of input, Ctrl-C: the prompt's line is still open
            click.echo(err=True)
            confirmed = False
        if not confirmed:
            click.echo("aborted", err=True)
            raise click.exceptions.Exit(1)
    _print_bulk(_bulk(filters, action), as_json)


@async_command
async def _count(filters: JobFilter, action: str) -> int:
    return await with_runtime(lambda rt: rt.store.count_actionable(filters, action))


@async_command
async def _bulk(filters: JobFilter, action: str) -> BulkResult:
    async def act(rt: Runtime) -> BulkResult:
        method = rt.store.bulk_cancel if action == "cancel" else rt.store.bulk_retry
        return await method(filters, cli_actor())

    return await with_runtime(act)


def _jobs(n: int) -> str:
    return f"{n} job" if n == 1 else f"{n} jobs"


def _print_bulk(result: BulkResult, as_json: bool) -> None:
    if as_json:
        emit_json({"action": result.action, "acted": result.acted, "running": result.running})
        return
    if result.action == "retry":
        click.echo(f"retried {_jobs(result.acted)}")
        return
    note = (
        f" ({result.running} running: their workers were asked to stop)" if result.running else ""
    )
    click.echo(f"cancelled {_jobs(result.acted)}{note}")


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
