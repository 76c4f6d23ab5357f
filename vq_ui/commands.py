"""``vq users``, ``vq tokens`` and ``vq e2e``: the commands vq_ui adds to the CLI.

They open the database the way the core commands do (``vq_core.cli.common.with_runtime``),
so settings, the DSN and the embedded server are resolved identically.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click

from vq_core.cli.common import UsageProblem, async_command, emit_json, json_option, with_runtime
from vq_core.runtime import Runtime, require_migrated
from vq_core.validation import check_text
from vq_ui.auth import sessions, users
from vq_ui.auth.roles import Role

ROLE = click.Choice([r.value for r in Role])
BIGINT_MAX = 2**63 - 1


def _token_ref(text: str) -> str:
    """The argument of ``tokens revoke``, once it is sure to reach the database: digits
    (an id to ``revoke_token``) within PostgreSQL's bigint, a name it can store."""
    check_text(text, "ID_OR_NAME")
    if text.isdigit():  # the test revoke_token applies to tell an id from a name
        try:
            number = int(text)
        except ValueError:  # digits int() does not read, such as "²"
            number = 0
        if not 1 <= number <= BIGINT_MAX:
            raise UsageProblem(f"ID_OR_NAME: a token id is 1 to {BIGINT_MAX}, not {text}")
    return text


def _read_password(from_stdin: bool) -> str | None:
    if not from_stdin:
        return None
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageProblem("password: nothing on standard input")
    return password


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a users/tokens function on a migrated database; its errors exit 2."""

    async def body(rt: Runtime) -> Any:
        await require_migrated(rt)
        return await fn(rt.store, *args, **kwargs)

    try:
        return await with_runtime(body)
    except users.UnknownName as exc:
        raise UsageProblem(str(exc)) from None


# -- vq users -----------------------------------------------------------------------


@click.group(name="users")
def users_group() -> None:
    """People who sign in to the admin page (roles: admin, operator, viewer)."""


@users_group.command("add")
@click.argument("name")
@click.option("--role", type=ROLE, default="viewer", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@async_command
async def users_add(name: str, role: str, password_stdin: bool) -> None:
    """Create a user; without --password-stdin a random password is printed once."""
    given = _read_password(password_stdin)
    password = given or users.generate_password()
    user = await _call(users.create_user, name, password, role)
    click.echo(f"created {user.role.value} {user.username!r}")
    if given is None:
        click.echo(f"password: {password}  (shown only now)")


@users_group.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@async_command
async def users_passwd(name: str, password_stdin: bool) -> None:
    """Set a new password (random unless --password-stdin); signs the user out."""
    given = _read_password(password_stdin)
    password = given or users.generate_password()
    await _call(users.set_password, name, password)
    click.echo(f"password of {name!r} changed")
    if given is None:
        click.echo(f"password: {password}  (shown only now)")


@users_group.command("set")
@click.argument("name")
@click.option("--role", type=ROLE, default=None)
@click.option("--disable/--enable", "disabled", default=None, help="Lock or unlock the account.")
@async_command
async def users_set(name: str, role: str | None, disabled: bool | None) -> None:
    """Change a user's role, or disable / enable the account."""
    if role is None and disabled is None:
        raise UsageProblem("nothing to change: pass --role, --disable or --enable")
    user = await _call(users.update_user, name, role=role, disabled=disabled)
    state = "disabled" if user.disabled else "enabled"
    click.echo(f"{user.username}: {user.role.value}, {state}")


@users_group.command("list")
@json_option
@async_command
async def users_list(as_json: bool) -> None:
    """List users."""
    found = await _call(users.list_users)
    if as_json:
        emit_json([u.to_dict() for u in found])
        return
    for u in found:
        flag = "  (disabled)" if u.disabled else ""
        click.echo(f"{u.username:<24} {u.role.value:<9} since {u.created_at:%Y-%m-%d}{flag}")


@users_group.command("sessions")
@click.argument("name")
@json_option
@async_command
async def users_sessions(name: str, as_json: bool) -> None:
    """List a user's live sessions (id, opened, last seen, expires, address, browser)."""
    check_text(name, "NAME")
    found = await _call(sessions.list_sessions, name)
    if as_json:
        emit_json([s.to_dict() for s in found])
        return
    if not found:
        click.echo(f"{name!r} has no live sessions")
    for s in found:
        click.echo(
            f"{s.id:>6}  opened {s.created_at:%Y-%m-%d %H:%M}  seen {s.last_seen_at:%Y-%m-%d %H:%M}"
            f"  expires {s.expires_at:%Y-%m-%d %H:%M}  {s.ip:<15} {s.user_agent}"
        )


@users_group.command("end-sessions")
@click.argument("name")
@async_command
async def users_end_sessions(name: str) -> None:
    """End every session of a user: their browsers are signed out at once."""
    check_text(name, "NAME")
    ended = await _call(sessions.end_user_sessions, name)
    click.echo(f"ended {ended} session{'' if ended == 1 else 's'} of {name!r}")


# -- vq tokens ----------------------------------------------------------------------


@click.group(name="tokens")
def tokens_group() -> None:
    """API tokens for machines (Authorization: Bearer <token>)."""


@tokens_group.command("create")
@click.argument("name")
@click.option("--role", type=ROLE, default="operator", show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="Print the token only.")
@async_command
async def tokens_create(name: str, role: str, quiet: bool) -> None:
    """Create a token and print it (the only time it is shown)."""
    new = await _call(users.create_token, name, role)
    if quiet:
        click.echo(new.token)
        return
    click.echo(f"created {new.info.role.value} token {new.info.name!r} (id {new.info.id})")
    click.echo(f"token: {new.token}  (shown only now)")


@tokens_group.command("list")
@json_option
@async_command
async def tokens_list(as_json: bool) -> None:
    """List tokens (never their secrets)."""
    found = await _call(users.list_tokens)
    if as_json:
        emit_json([t.to_dict() for t in found])
        return
    for t in found:
        used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
        state = "revoked" if t.revoked else "live"
        click.echo(f"{t.id:>5} {t.name:<24} {t.role.value:<9} {state:<8} last used {used}")


@tokens_group.command("revoke")
@click.argument("token", metavar="ID_OR_NAME")
@async_command
async def tokens_revoke(token: str) -> None:
    """Revoke a live token by id or name."""
    revoked = await _call(users.revoke_token, _token_ref(token))
    click.echo(f"revoked token {revoked.name!r} (id {revoked.id})")


# -- vq e2e -------------------------------------------------------------------------


@click.command(name="e2e")
@click.option("--url", required=True, help="Base URL of the vq server, e.g. http://127.0.0.1:8080")
@click.option("--token", required=True, envvar="VQ_TOKEN", help="An operator token [env VQ_TOKEN].")
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds a worker has to pick the job up.",
)
@click.option(
    "--complete-timeout",
    default=600.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds the render may take.",
)
def e2e(url: str, token: str, timeout: float, complete_timeout: float) -> None:
    """Run the end-to-end scenario against a running vq: submit a doubt through the API,
    see it picked up and completed, fetch and decode its video. Exit 0 when all pass."""
    from vq_ui.e2e import run_scenario

    if not url.startswith(("http://", "https://")):
        raise UsageProblem("--url: must start with http:// or https://")
    ok = asyncio.run(run_scenario(url, token, timeout, complete_timeout, click.echo))
    click.echo("e2e: all steps passed" if ok else "e2e: FAILED")
    sys.exit(0 if ok else 1)


def add_commands(cli: click.Group) -> None:
    """Add ``vq users``, ``vq tokens`` and ``vq e2e`` to the CLI."""
    cli.add_command(users_group)
    cli.add_command(tokens_group)
    cli.add_command(e2e)
