"""The ``vq`` command line. Human output by default, ``--json`` for scripts.

Bad input exits with code 2 and one line saying what is wrong, never a traceback.
Plugins add commands through the ``vq_add_commands`` hook.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import click

from vq_core import __version__, db
from vq_core.cli.output import print_job, print_jobs, print_stats
from vq_core.config import ConfigError, Settings, load_settings
from vq_core.db.embedded import EmbeddedError
from vq_core.errors import InvalidInput, InvalidTransition, JobNotFound
from vq_core.logs import setup_logging
from vq_core.models import Job, JobFilter, JobStatus, Priority
from vq_core.plugins import collect_services, make_plugin_manager
from vq_core.runtime import DatabaseUnavailable, Runtime, open_runtime, run_coroutine, serve
from vq_core.validation import parse_job_request, parse_payload

P = ParamSpec("P")
T = TypeVar("T")


class UsageProblem(click.ClickException):
    """Bad input or configuration: exit code 2, message only."""

    exit_code = 2


def async_command(func: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """Run an async click command, turning known errors into clean exits."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return run_coroutine(func(*args, **kwargs), _event_loop())
        except (ConfigError, InvalidInput, InvalidTransition) as exc:
            raise UsageProblem(str(exc)) from None
        except JobNotFound as exc:
            raise UsageProblem(str(exc)) from None
        except (DatabaseUnavailable, EmbeddedError) as exc:
            raise click.ClickException(str(exc)) from None
        except db.DB_ERRORS as exc:
            # A database lost or broken mid-command (a restart, a cut connection).
            raise click.ClickException(f"database error: {exc}") from None

    return wrapper


def _event_loop() -> str:
    """The configured event loop; bad configuration is reported by the command itself."""
    try:
        return load_settings().event_loop
    except ConfigError:
        return "asyncio"


def settings_from(**overrides: Any) -> Settings:
    """Load settings with command-line overrides; a bad value exits 2."""
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        raise UsageProblem(str(exc)) from None


def job_id_arg(value: str) -> uuid.UUID:
    """Parse a job id argument."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise UsageProblem(f"not a job id: {value!r}") from None


async def with_runtime(fn: Callable[[Runtime], Awaitable[T]], **overrides: Any) -> T:
    """Run ``fn`` with a connected runtime (no migrations, no worker)."""
    async with open_runtime(settings_from(**overrides)) as rt:
        return await fn(rt)


def emit_json(data: Any) -> None:
    """Print JSON for scripts."""
    click.echo(json.dumps(data, indent=2, default=str))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
plugin_option = click.option(
    "--plugin",
    "plugins",
    multiple=True,
    metavar="MODULE",
    help="Load a plugin module by name (repeatable).",
)


@click.group()
@click.version_option(__version__, prog_name="vq")
def cli() -> None:
    """vq: a PostgreSQL-backed job queue for video generation."""


# -- running --------------------------------------------------------------------------


def _run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = plugin_option(func)
    func = click.option("--concurrency", type=click.IntRange(1, 10_000), help="Jobs at once.")(func)
    func = click.option("--log-json", is_flag=True, default=None, help="JSON log lines.")(func)
    return func


@cli.command()
@_run_options
@click.option("--host", help="Admin page host (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Admin page port (default 8080).")
@click.option("--no-web", is_flag=True, help="Do not serve the admin page and API.")
def run(
    plugins: tuple[str, ...],
    concurrency: int | None,
    log_json: bool | None,
    host: str | None,
    port: int | None,
    no_web: bool,
) -> None:
    """Migrate, then run a worker, the scheduler and the admin page."""
    settings = settings_from(concurrency=concurrency, log_json=log_json, host=host, port=port)
    setup_logging(settings.log_level, settings.log_json)
    async_command(serve)(settings, plugins, web=not no_web, migrate=True)


@cli.command()
@_run_options
def worker(plugins: tuple[str, ...], concurrency: int | None, log_json: bool | None) -> None:
    """Run a worker only (scale-out); the database must already be migrated."""
    settings = settings_from(concurrency=concurrency, log_json=log_json)
    setup_logging(settings.log_level, settings.log_json)
    async_command(serve)(settings, plugins, web=False, migrate=False)


@cli.command()
@json_option
@async_command
async def migrate(as_json: bool) -> None:
    """Apply pending database migrations (safe to run from several processes)."""
    settings = settings_from()
    from vq_core import db
    from vq_core.db import migrations

    dsn = await db.resolve_dsn(settings)
    # The connect timeout and keepalives of every vq connection, but no statement
    # timeout: an index build on a large table may rightly take longer (as in vq run).
    options = dataclasses.replace(db.connect_options(settings), statement_timeout=None)
    try:
        conn = await db.connect(dsn, options)
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot reach the database: {exc}") from None
    try:
        applied = await migrations.migrate(conn)
    finally:
        await conn.close()
    names = [f"{m.version:04d}_{m.name}" for m in applied]
    if as_json:
        emit_json({"applied": names})
    else:
        click.echo("applied: " + ", ".join(names) if names else "database is up to date")


# -- submitting and inspecting jobs -----------------------------------------------------


@cli.command()
@click.argument("job_type")
@click.option("--payload", default="{}", help="Job payload as a JSON object.")
@click.option(
    "--priority",
    default="normal",
    type=click.Choice([p.label for p in Priority], case_sensitive=False),
)
@click.option("--run-at", help="ISO time with zone; the job waits until then.")
@click.option("--max-retries", type=int, help="Override the job type's retry limit.")
@click.option("--idempotency-key", help="Submitting the same key again returns the same job.")
@json_option
@async_command
async def submit(
    job_type: str,
    payload: str,
    priority: str,
    run_at: str | None,
    max_retries: int | None,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Submit one job, e.g. ``vq submit doubt --payload '{"question": "..."}'``."""
    request: dict[str, Any] = {
        "job_type": job_type,
        "payload": parse_payload(payload),
        "priority": priority.lower(),
    }
    for key, value in (
        ("run_at", run_at),
        ("max_retries", max_retries),
        ("idempotency_key", idempotency_key),
    ):
        if value is not None:
            request[key] = value
    new_job = parse_job_request(request)
    result = await with_runtime(lambda rt: rt.store.enqueue(new_job))
    if as_json:
        emit_json({"id": str(result.id), "created": result.created})
    else:
        click.echo(f"{result.id} {'submitted' if result.created else 'already submitted'}")


@cli.group()
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
        return await method(jid, by="cli")

    job = await with_runtime(act)
    if as_json:
        emit_json(job.to_dict())
    elif job.status is JobStatus.RUNNING:
        click.echo(f"{job.id} cancel requested")
    else:
        click.echo(f"{job.id} {job.status.value}")


@cli.command()
@json_option
@async_command
async def stats(as_json: bool) -> None:
    """Counts, depth, throughput, success rate and durations."""
    data = await with_runtime(lambda rt: rt.store.stats())
    if as_json:
        emit_json(data)
    else:
        print_stats(data)


@cli.command()
@click.option("--older-than-days", type=click.FloatRange(min=0, min_open=True))
@json_option
@async_command
async def prune(older_than_days: float | None, as_json: bool) -> None:
    """Delete finished jobs (and their history) older than the retention period."""
    settings = settings_from()
    days = older_than_days or settings.prune_after_days
    deleted = await with_runtime(lambda rt: rt.store.prune(days * 86400))
    if as_json:
        emit_json({"deleted": deleted})
    else:
        click.echo(f"deleted {deleted} finished jobs older than {days:g} days")


@cli.command()
@plugin_option
@json_option
def plugins(plugins: tuple[str, ...], as_json: bool) -> None:
    """List loaded plugins, their hooks and the services they provide."""
    settings = settings_from()
    try:
        pm = make_plugin_manager(settings, plugins)
        services = collect_services(pm, settings)
    except ConfigError as exc:
        raise UsageProblem(str(exc)) from None
    rows = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda np: np[0]):
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        rows.append(
            {"name": name, "module": getattr(plugin, "__name__", repr(plugin)), "hooks": hooks}
        )
    routes = {s.name: list(s.job_types) for s in services.values()}
    if as_json:
        emit_json({"plugins": rows, "services": routes})
        return
    for row in rows:
        click.echo(f"{row['name']:<20} {', '.join(row['hooks'])}")
    for name, types in routes.items():
        click.echo(f"service {name:<12} renders {', '.join(types) or '(routed by config)'}")


def main() -> None:
    """Entry point of the ``vq`` script: let plugins add commands, then run."""
    try:
        pm = make_plugin_manager(load_settings())
    except ConfigError:
        # The command itself reports bad configuration; plugins' commands need defaults only.
        pm = make_plugin_manager(Settings.model_construct())
    pm.hook.vq_add_commands(cli=cli)
    cli(prog_name="vq")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
