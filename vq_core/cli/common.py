"""What every ``vq`` command shares: clean exits for known errors, the runtime, JSON
output and who the actor is.

Bad input exits with code 2 and one line saying what is wrong, never a traceback.
"""

from __future__ import annotations

import functools
import getpass
import json
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import click

from vq_core import db
from vq_core.config import ConfigError, Settings, load_settings
from vq_core.db.embedded import EmbeddedError
from vq_core.errors import InvalidInput, InvalidTransition, JobNotFound
from vq_core.models import Actor
from vq_core.runtime import DatabaseUnavailable, Runtime, open_runtime, run_coroutine

P = ParamSpec("P")
T = TypeVar("T")


class UsageProblem(click.ClickException):
    """Bad input or configuration: exit code 2, message only."""

    exit_code = 2


def async_command(
    func: Callable[P, Coroutine[Any, Any, T]], *, service: bool = False
) -> Callable[P, T]:
    """Run an async click command, turning known errors into clean exits.

    ``service=True`` for the long-running processes (``vq run``, ``vq worker``): the
    ``auto`` event loop is uvloop there; a one-shot command runs on asyncio, as uvloop's
    import would cost it more than the loop saves in a few queries.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return run_coroutine(func(*args, **kwargs), _event_loop(service))
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


def _event_loop(service: bool) -> str:
    """The configured event loop; bad configuration is reported by the command itself."""
    try:
        loop = load_settings().event_loop
    except ConfigError:
        return "asyncio"
    return loop if service or loop != "auto" else "asyncio"


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
    """Run ``fn`` with a connected runtime (no migrations, no worker).

    A command is one short conversation: its pool opens one connection (more only if
    ``fn`` runs queries side by side), and plugins load only if ``fn`` uses ``rt.pm``.
    """
    async with open_runtime(settings_from(**overrides), load_plugins=False, pool_min_size=1) as rt:
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


def cli_actor() -> Actor:
    """Who acts from this command line, as the job history records it: the account
    the command runs under (the CLI talks to the database directly, without a login)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry or environment name (a bare container)
        name = "unknown"
    return Actor(name, "cli")
