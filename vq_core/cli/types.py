"""``vq types`` and ``vq services``: steer each job type (pause, route, time out,
retry, cap) and each service's cluster-wide cap, and read who changed what.

Every change goes through the same checks as ``PATCH /api/v1/types/{type}`` and
``PATCH /api/v1/services/{name}`` (``vq_core.validation``) and is recorded with the
command line's actor (``cli_actor``). The word ``none`` clears a cap or the service.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import click
from pydantic import ValidationError

from vq_core.cli.common import (
    UsageProblem,
    async_command,
    cli_actor,
    emit_json,
    json_option,
    with_runtime,
)
from vq_core.errors import InvalidInput
from vq_core.models import JobFilter, JobStatus, QueueConfig
from vq_core.queue_types import TypeState
from vq_core.runtime import Runtime
from vq_core.store.queue_config import ConfigChange
from vq_core.validation import (
    ServiceLimitRequest,
    check_callback_url,
    describe_validation_error,
    queue_config_patch,
)

#: The word that clears a setting on the command line (JSON ``null``).
NONE = "none"

#: Each ``vq types set`` option and the setting it changes, with how its text is read.
_SETTING_OPTIONS: dict[str, tuple[str, type]] = {
    "--service": ("service", str),
    "--timeout": ("timeout_s", float),
    "--max-retries": ("max_retries", int),
    "--concurrency": ("concurrency", int),
    "--max-running": ("max_running", int),
    "--max-running-per-group": ("max_running_per_group", int),
    "--callback-url": ("callback_url", str),
}
_OPTION_OF = {setting: option for option, (setting, _) in _SETTING_OPTIONS.items()}
_OPTION_OF["paused"] = "--pause/--resume"


def _value(text: str, kind: type) -> Any:
    """An option's text as the API's JSON would carry it: ``none`` is null, a number is
    a number. Text that is not a number is passed on as text, so that the shared
    validation refuses it with the API's own words."""
    if text.strip().lower() == NONE:
        return None
    if kind is str:
        return text
    try:
        return kind(text)
    except ValueError:
        return text


def _name_options(message: str) -> str:
    """``timeout_s: ...`` -> ``--timeout (timeout_s): ...``: name what the user typed."""
    parts = []
    for part in message.split("; "):
        setting, sep, rest = part.partition(": ")
        option = _OPTION_OF.get(setting)
        parts.append(f"{option} ({setting}): {rest}" if sep and option else part)
    return "; ".join(parts)


def _config_dict(config: QueueConfig) -> dict[str, Any]:
    out = dataclasses.asdict(config)
    if config.updated_at is not None:
        out["updated_at"] = config.updated_at.isoformat()
    return out


def _cap(value: int | None) -> str:
    return "-" if value is None else str(value)


def _settings_line(config: QueueConfig) -> str:
    return (
        f"{'paused' if config.paused else 'running'}, service {config.service or '(default)'}, "
        f"timeout {config.timeout_s:g}s, retries {config.max_retries}, "
        f"concurrency {_cap(config.concurrency)} per process, "
        f"max running {_cap(config.max_running)}, "
        f"per group {_cap(config.max_running_per_group)}"
        + (f", callback {config.callback_url}" if config.callback_url else "")
    )


def _when(at: datetime | None) -> str:
    return "-" if at is None else f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"


# -- vq types ---------------------------------------------------------------------------


@click.group(name="types")
def types_group() -> None:
    """Job types: state, settings and counts; pause, route and cap them."""


@types_group.command("list")
@json_option
@async_command
async def types_list(as_json: bool) -> None:
    """Each job type's state, service, settings, counts and last change.

    A type whose jobs cannot run says why: paused, unrouted (no service renders
    it), service missing (routed to a service no worker has) or service unhealthy.
    """
    states = await with_runtime(lambda rt: rt.store.type_states(rt.settings.default_timeout))
    if as_json:
        emit_json({"types": [s.to_dict() for s in states]})
        return
    if not states:
        click.echo("no job types (none configured, none with jobs, none routed)")
        return
    for state in states:
        _print_type(state)


def _print_type(state: TypeState) -> None:
    config = state.config
    service = state.service or "-"
    if state.service_max_running is not None:
        service += f" (at most {state.service_max_running} running)"
    click.echo(f"{state.job_type}: {state.state}, service {service}")
    if state.problem:
        click.echo(f"  problem: {state.problem}")
    click.echo(
        f"  settings: timeout {config.timeout_s:g}s, retries {config.max_retries}, "
        f"concurrency {_cap(config.concurrency)} per process, "
        f"max running {_cap(config.max_running)}, "
        f"per group {_cap(config.max_running_per_group)}"
        + ("" if state.configured else " (defaults)")
    )
    click.echo("  jobs: " + ", ".join(f"{k} {v}" for k, v in state.counts.items()))
    if config.updated_at is not None:
        click.echo(f"  changed: {_when(config.updated_at)} by {config.updated_by or '-'}")


@types_group.command("set")
@click.argument("job_type")
@click.option("--pause/--resume", "paused", default=None, help="Pause or resume the type.")
@click.option(
    "--service", metavar="NAME|none", help="The service that renders it; none: the default."
)
@click.option("--timeout", metavar="SECONDS", help="Seconds per attempt.")
@click.option("--max-retries", metavar="N", help="Retries after the first attempt.")
@click.option(
    "--concurrency", metavar="N|none", help="Running jobs per worker process; none: no cap."
)
@click.option(
    "--max-running", metavar="N|none", help="Running jobs across every worker; none: no cap."
)
@click.option(
    "--max-running-per-group",
    metavar="N|none",
    help="Running jobs of one group across every worker; none: no cap.",
)
@click.option(
    "--callback-url",
    metavar="URL|none",
    help="The callback URL of its jobs that name none (callbacks.allowed_origins); none: none.",
)
@json_option
@async_command
async def types_set(
    job_type: str,
    paused: bool | None,
    service: str | None,
    timeout: str | None,
    max_retries: str | None,
    concurrency: str | None,
    max_running: str | None,
    max_running_per_group: str | None,
    callback_url: str | None,
    as_json: bool,
) -> None:
    """Change a job type's settings; what is not named stays as it is.

    The word ``none`` clears a cap or the service, e.g. ``--max-running none`` or
    ``--service none`` (the type is then routed by the configuration and the
    services' own types). Workers pick the change up at once; it is recorded with
    who made it (``vq types history``).
    """
    given = {
        "--service": service,
        "--timeout": timeout,
        "--max-retries": max_retries,
        "--concurrency": concurrency,
        "--max-running": max_running,
        "--max-running-per-group": max_running_per_group,
        "--callback-url": callback_url,
    }
    values: dict[str, Any] = {}
    if paused is not None:
        values["paused"] = paused
    for option, text in given.items():
        if text is not None:
            setting, kind = _SETTING_OPTIONS[option]
            values[setting] = _value(text, kind)
    if not values:
        raise UsageProblem(
            "nothing to change: give --pause, --resume, --service, --timeout, --max-retries, "
            "--concurrency, --max-running, --max-running-per-group or --callback-url"
        )
    try:
        patch = queue_config_patch(values)
    except InvalidInput as exc:
        raise UsageProblem(_name_options(str(exc))) from None

    async def update(rt: Runtime) -> QueueConfig:
        if patch.callback_url is not None:
            check_callback_url(patch.callback_url, rt.settings.callbacks.allowed_origins)
        return await rt.store.update_queue_config(
            job_type, patch, cli_actor(), rt.settings.default_timeout
        )

    try:
        config = await with_runtime(update)
    except InvalidInput as exc:
        raise UsageProblem(_name_options(str(exc))) from None
    if as_json:
        emit_json(_config_dict(config))
    else:
        click.echo(f"{config.job_type}: {_settings_line(config)}")


@types_group.command("history")
@click.argument("job_type", required=False)
@click.option("--limit", default=20, type=click.IntRange(1, 1000), show_default=True)
@json_option
@async_command
async def types_history(job_type: str | None, limit: int, as_json: bool) -> None:
    """Who changed which settings, when, newest first: of one type, or of every type
    and service."""
    subject = f"type:{job_type}" if job_type else None
    changes = await with_runtime(lambda rt: rt.store.config_changes(subject, limit))
    if as_json:
        emit_json({"changes": [c.to_dict() for c in changes]})
        return
    if not changes:
        click.echo("no changes recorded")
        return
    for change in changes:
        click.echo(_change_line(change))


def _shown(value: Any) -> str:
    return NONE if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _change_line(change: ConfigChange) -> str:
    what = "; ".join(
        f"{name} {_shown(old)} -> {_shown(new)}" for name, (old, new) in change.changes.items()
    )
    return f"{_when(change.at)}  {change.subject}  by {change.actor} ({change.via})  {what}"


# -- vq services ------------------------------------------------------------------------


@click.group(name="services")
def services_group() -> None:
    """Video services: health as the workers see it, and cluster-wide caps."""


@services_group.command("list")
@json_option
@async_command
async def services_list(as_json: bool) -> None:
    """Each service's latest health check (from the workers), the types routed to
    it, its cluster-wide cap and its running jobs."""

    async def fetch(rt: Runtime) -> list[dict[str, Any]]:
        health = {row["service"]: row for row in await rt.store.list_service_health()}
        limits = {limit.service: limit for limit in await rt.store.service_limits()}
        rows = []
        for name in sorted(set(health) | set(limits)):
            check, limit = health.get(name), limits.get(name)
            # Running jobs whose latest attempt went to this service: what its cap counts.
            running = await rt.store.count_actionable(
                JobFilter(status=JobStatus.RUNNING, service=name), "cancel"
            )
            rows.append(
                {
                    "service": name,
                    "seen": check is not None,
                    "healthy": check["healthy"] if check else None,
                    "detail": check["detail"] if check else None,
                    "checked_at": check["checked_at"].isoformat() if check else None,
                    "changed_at": check["changed_at"].isoformat() if check else None,
                    "job_types": list(check["job_types"]) if check else [],
                    "running": running,
                    "max_running": limit.max_running if limit else None,
                    "limit_updated_at": limit.updated_at.isoformat() if limit else None,
                    "limit_updated_by": limit.updated_by if limit else None,
                }
            )
        return rows

    rows = await with_runtime(fetch)
    if as_json:
        emit_json({"services": rows})
        return
    if not rows:
        click.echo("no services (no worker has checked one yet, none is capped)")
        return
    for row in rows:
        _print_service(row)


def _print_service(row: dict[str, Any]) -> None:
    if not row["seen"]:
        health = "not seen by any worker"
    elif row["healthy"]:
        health = "healthy"
    else:
        health = f"unhealthy ({row['detail'] or 'health check failed'})"
    cap = row["max_running"]
    running = f"running {row['running']}" + (f" of at most {cap}" if cap is not None else "")
    click.echo(f"{row['service']}: {health}, {running}")
    if row["seen"]:
        checked = datetime.fromisoformat(row["checked_at"])
        types_text = ", ".join(row["job_types"]) or "-"
        click.echo(f"  types: {types_text}; checked {_when(checked)}")
    if cap is not None:
        updated = datetime.fromisoformat(row["limit_updated_at"])
        click.echo(f"  cap set {_when(updated)} by {row['limit_updated_by'] or '-'}")


@services_group.command("set")
@click.argument("name")
@click.option(
    "--max-running",
    metavar="N|none",
    required=True,
    help="Running jobs of the service across every worker; none: no cap.",
)
@json_option
@async_command
async def services_set(name: str, max_running: str, as_json: bool) -> None:
    """Cap a service's running jobs across every worker and host (``none`` removes
    the cap). Recorded with who did it (``vq types history``)."""
    if not name.strip():
        raise UsageProblem("service: may not be empty")
    try:
        request = ServiceLimitRequest.model_validate({"max_running": _value(max_running, int)})
    except ValidationError as exc:
        raise UsageProblem(_name_options(describe_validation_error(exc))) from None
    await with_runtime(
        lambda rt: rt.store.set_service_limit(name, request.max_running, cli_actor())
    )
    if as_json:
        emit_json({"service": name, "max_running": request.max_running})
    elif request.max_running is None:
        click.echo(f"{name}: no cluster-wide cap")
    else:
        click.echo(f"{name}: at most {request.max_running} running across every worker")
