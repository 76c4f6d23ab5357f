"""The ``vq`` command line. Human output by default, ``--json`` for scripts.

Bad input exits with code 2 and one line saying what is wrong, never a traceback.
Plugins add commands through the ``vq_add_commands`` hook.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from vq_core import __version__, db, tracing
from vq_core.cli.common import (
    UsageProblem,
    async_command,
    emit_json,
    json_option,
    plugin_option,
    settings_from,
    with_runtime,
)
from vq_core.cli.output import print_stats
from vq_core.config import ConfigError, Settings, load_settings
from vq_core.logs import setup_logging
from vq_core.models import Priority
from vq_core.runtime import DatabaseUnavailable, Runtime, serve

# vq's own command groups, by name, imported when named: ``vq submit`` does not pay for
# the alert engine's imports, nor ``vq stats`` for the backup's.
_CORE_GROUPS = {
    "jobs": "vq_core.cli.jobs:jobs",
    "alerts": "vq_core.cli.alerts:alerts",
    "types": "vq_core.cli.types:types_group",
    "services": "vq_core.cli.types:services_group",
    "workers": "vq_core.cli.workers:workers",
    "import": "vq_core.cli.import_jobs:import_jobs",
    "db": "vq_core.cli.db_commands:db_group",
}


class _RootGroup(click.Group):
    """The ``vq`` group. A plugin's group named like one of vq's own (the reference
    services' ``vq services serve``) adds its commands to it instead of replacing it;
    on a clash of command names, the command added first (vq's own) stays."""

    def _own(self, name: str) -> click.Command | None:
        """The command ``name`` as added so far, importing vq's own group on first use."""
        if name not in self.commands and name in _CORE_GROUPS:
            module, attr = _CORE_GROUPS[name].split(":")
            super().add_command(getattr(importlib.import_module(module), attr), name)
        return self.commands.get(name)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        existing = self._own(name) if name else None
        if isinstance(existing, click.Group) and isinstance(cmd, click.Group):
            if existing is not cmd:
                for sub_name, sub in cmd.commands.items():
                    existing.commands.setdefault(sub_name, sub)
            return
        if existing is not None:
            return
        super().add_command(cmd, name)

    # Plugins' commands are added on first need, not at start-up: loading every entry
    # point (the web stack's among them) would cost vq's own commands more than their
    # work. A plugin cannot replace vq's own command, so a core command named in full
    # runs the same without them.
    _plugins_added = False

    def add_plugin_commands(self) -> None:
        """Let every plugin add its commands (once per process)."""
        if self._plugins_added:
            return
        self._plugins_added = True
        # Imported here: pluggy and the hook specifications are for plugins' commands.
        from vq_core.plugins import make_plugin_manager

        try:
            pm = make_plugin_manager(load_settings())
        except ConfigError:
            # The command itself reports bad configuration; plugins' commands need defaults only.
            pm = make_plugin_manager(Settings.model_construct())
        pm.hook.vq_add_commands(cli=self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        # Help and completion list every command.
        for name in _CORE_GROUPS:
            self._own(name)
        self.add_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._own(cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if self._needs_plugins(args):
            self.add_plugin_commands()
        return super().resolve_command(ctx, args)

    def _needs_plugins(self, args: list[str]) -> bool:
        """Whether ``args`` may name a plugin's command: not one of vq's own, or a group of
        vq's own (which plugins may extend, as ``vq services serve``) without one of its
        own subcommands named."""
        cmd = self._own(args[0]) if args else None
        if cmd is None:
            return True
        if isinstance(cmd, click.Group):
            sub = next((a for a in args[1:] if not a.startswith("-")), None)
            return sub is None or sub not in cmd.commands
        return False


@click.group(cls=_RootGroup)
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
@click.option(
    "--no-worker", is_flag=True, help="Serve the admin page and API only (web processes)."
)
def run(
    plugins: tuple[str, ...],
    concurrency: int | None,
    log_json: bool | None,
    host: str | None,
    port: int | None,
    no_web: bool,
    no_worker: bool,
) -> None:
    """Migrate, then run a worker, the scheduler and the admin page."""
    if no_web and no_worker:
        raise UsageProblem("--no-web and --no-worker leave nothing to run")
    settings = settings_from(concurrency=concurrency, log_json=log_json, host=host, port=port)
    setup_logging(settings.log_level, settings.log_json)
    async_command(serve, service=True)(
        settings, plugins, web=not no_web, migrate=True, work=not no_worker
    )


@cli.command()
@_run_options
def worker(plugins: tuple[str, ...], concurrency: int | None, log_json: bool | None) -> None:
    """Run a worker only (scale-out); the database must already be migrated."""
    settings = settings_from(concurrency=concurrency, log_json=log_json)
    setup_logging(settings.log_level, settings.log_json)
    async_command(serve, service=True)(settings, plugins, web=False, migrate=False)


@cli.command()
@json_option
@async_command
async def migrate(as_json: bool) -> None:
    """Apply pending database migrations (safe to run from several processes)."""
    settings = settings_from()
    from vq_core.db import migrations

    # The direct URL past a pooler: the migrations' session lock needs one server session.
    dsn = await db.resolve_listen_dsn(settings)
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
@click.option(
    "--group-key", help="Whose job this is (e.g. the student): the claim takes turns by group."
)
@click.option(
    "--callback-url",
    help="Where vq POSTs the outcome when the job ends (its origin must be in "
    "callbacks.allowed_origins).",
)
@json_option
@async_command
async def submit(
    job_type: str,
    payload: str,
    priority: str,
    run_at: str | None,
    max_retries: int | None,
    idempotency_key: str | None,
    group_key: str | None,
    callback_url: str | None,
    as_json: bool,
) -> None:
    """Submit one job, e.g. ``vq submit doubt --payload '{"question": "..."}'``."""
    # Here, not at the top: the other commands validate no job.
    from vq_core.validation import check_callback_url, parse_job_request, parse_payload

    request: dict[str, Any] = {
        "job_type": job_type,
        "payload": parse_payload(payload),
        "priority": priority.lower(),
    }
    for key, value in (
        ("run_at", run_at),
        ("max_retries", max_retries),
        ("idempotency_key", idempotency_key),
        ("group_key", group_key),
        ("callback_url", callback_url),
    ):
        if value is not None:
            request[key] = value
    new_job = parse_job_request(request)
    if new_job.callback_url is not None:
        origins = settings_from().callbacks.allowed_origins
        check_callback_url(new_job.callback_url, origins, "--callback-url")
    # Traces on: a vq.submit span, continuing TRACEPARENT when a traced script sets it.
    parent = {k.lower(): os.environ[k] for k in ("TRACEPARENT", "TRACESTATE") if k in os.environ}
    [result] = await with_runtime(
        lambda rt: tracing.submit(
            [new_job], rt.store.enqueue_many, via="cli", headers=parent or None
        )
    )
    if as_json:
        emit_json({"id": str(result.id), "created": result.created})
    else:
        click.echo(f"{result.id} {'submitted' if result.created else 'already submitted'}")


@cli.command()
@json_option
@async_command
async def stats(as_json: bool) -> None:
    """Counts, depth, throughput, success rate and durations, and each job type whose
    jobs cannot run (paused, unrouted, its service missing or unhealthy)."""

    async def fetch(rt: Runtime) -> dict[str, Any]:
        data = await rt.store.stats()
        states = await rt.store.type_states(rt.settings.default_timeout)
        data["types"] = [
            {"job_type": s.job_type, "state": s.state, "problem": s.problem, "service": s.service}
            for s in states
            if s.state != "active"
        ]
        return data

    data = await with_runtime(fetch)
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
    from vq_core.plugins import collect_services, make_plugin_manager

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
    """Entry point of the ``vq`` script; plugins add their commands when one may be named."""
    cli(prog_name="vq")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
