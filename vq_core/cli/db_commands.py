"""``vq db``: back up the ``vq`` schema to a file, restore it from one.

Both work on the configured server (``database_url``) or the embedded one, with client
tools that fit the server (vq_core/backup.py chooses them). Bad input exits 2 with one
line; a failing database or tool exits 1, also with one line.
"""

from __future__ import annotations

from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click

from vq_core.backup import BackupFailed, BackupProblem, backup, restore
from vq_core.cli.common import UsageProblem, async_command, emit_json, json_option, settings_from


@click.group("db")
def db_group() -> None:
    """Back up and restore vq's database (the vq schema)."""


async def _guarded(step: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    try:
        return await step
    except BackupProblem as exc:
        raise UsageProblem(str(exc)) from None
    except BackupFailed as exc:
        raise click.ClickException(str(exc)) from None


def _counts(data: dict[str, Any]) -> str:
    jobs, events = data["jobs"], data["events"]
    return f"{jobs} job{'s' * (jobs != 1)}, {events} history event{'s' * (events != 1)}"


@db_group.command("backup")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@json_option
@async_command
async def backup_command(file: Path, force: bool, as_json: bool) -> None:
    """Dump the vq schema to FILE (pg_dump's custom format)."""
    data = await _guarded(backup(settings_from(), file, overwrite=force))
    if as_json:
        emit_json(data)
        return
    click.echo(
        f"backed up the vq schema of {data['database']} (PostgreSQL {data['server_version']}):"
        f" {_counts(data)}"
    )
    click.echo(f"to {data['file']} ({data['bytes']} bytes)")
    click.echo(f"with {data['pg_dump']} ({data['pg_dump_version']})")


@db_group.command("restore")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--force", is_flag=True, help="Replace the vq schema already there (kept if the restore fails)."
)
@json_option
@async_command
async def restore_command(file: Path, force: bool, as_json: bool) -> None:
    """Restore a backup of the vq schema from FILE into an empty database."""
    data = await _guarded(restore(settings_from(), file, force=force))
    if as_json:
        emit_json(data)
        return
    click.echo(
        f"restored {data['file']} into {data['database']} (PostgreSQL {data['server_version']}):"
        f" {_counts(data)}"
    )
    if data["replaced"] is not None:
        click.echo(f"replacing the vq schema that was there ({_counts(data['replaced'])})")
    click.echo(
        f"with {data['pg_restore']} ({data['pg_restore_version']}); the backup was written by "
        f"pg_dump {data['dumped_by']} from PostgreSQL {data['dumped_from']}"
    )
    if data["pending_migrations"]:
        names = ", ".join(data["pending_migrations"])
        click.echo(f"the restored schema needs migrations ({names}): run `vq migrate`")
