"""vq_ui as a plugin: ``vq users``, ``vq tokens``, ``vq e2e`` and the web server of ``vq run``."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner

from vq_core.config import Settings
from vq_core.plugins import make_plugin_manager
from vq_core.store import Store
from vq_ui.auth import users
from vq_ui.commands import add_commands
from vq_ui.server import WebServer

pytest_plugins = ["support.api"]  # cheap argon2


def ui_cli() -> click.Group:
    """A fresh group with vq_ui's commands (the global ``vq`` group stays untouched)."""
    group = click.Group("vq")
    add_commands(group)
    return group


@pytest.fixture
def runner(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("VQ_DATABASE_URL", dsn)
    monkeypatch.setenv("VQ_DATA_DIR", str(tmp_path))
    return CliRunner()


def invoke(runner: CliRunner, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(ui_cli(), list(args), input=stdin, catch_exceptions=False)
    return result.exit_code, result.output


def _token_of(out: str) -> str:
    return out.split("token: ", 1)[1].split()[0]


def test_users_add_list_passwd_set(runner: CliRunner) -> None:
    code, out = invoke(runner, "users", "add", "ann", "--role", "admin")
    assert code == 0 and "created admin 'ann'" in out
    generated = out.split("password: ", 1)[1].split()[0]
    code, out = invoke(runner, "users", "add", "bob", "--password-stdin", stdin="bob's password\n")
    assert code == 0 and "password:" not in out  # not echoed when given
    code, out = invoke(runner, "users", "list")
    assert "ann" in out and "admin" in out and "bob" in out and "viewer" in out
    code, out = invoke(runner, "users", "passwd", "ann")
    assert code == 0 and generated not in out
    code, out = invoke(runner, "users", "set", "bob", "--role", "operator", "--disable")
    assert code == 0 and out.strip() == "bob: operator, disabled"


# Each (arguments, what the error says); they change nothing, so they share a database.
BAD_INPUT = [
    (("users", "add", "a b"), "username:"),
    (("users", "passwd", "nobody"), "no user named 'nobody'"),
    (("users", "set", "nobody", "--role", "viewer"), "no user named 'nobody'"),
    (("users", "set", "ann"), "nothing to change"),
    (("users", "add", "ann", "--role", "boss"), "'boss' is not one of"),
    (("tokens", "revoke", "ghost"), "no live token 'ghost'"),
    (("tokens", "revoke", "99999999999999999999999"), "ID_OR_NAME: a token id is 1 to"),
    (("tokens", "revoke", str(2**63)), "ID_OR_NAME: a token id is 1 to"),
    (("tokens", "revoke", "0"), "ID_OR_NAME: a token id is 1 to"),
    (("tokens", "revoke", "²"), "ID_OR_NAME: a token id is 1 to"),  # isdigit, not int()
    (("tokens", "revoke", "\udcff"), "ID_OR_NAME: text may not contain lone surrogates"),
    (("tokens", "revoke", str(2**63 - 1)), f"no live token '{2**63 - 1}'"),
    (("tokens", "create", "a b"), "name:"),
    (("e2e", "--url", "127.0.0.1:8080", "--token", "t"), "--url: must start with http"),
]


def test_bad_input_exits_2_with_the_field(runner: CliRunner, subtests: pytest.Subtests) -> None:
    invoke(runner, "users", "add", "ann")
    for args, message in BAD_INPUT:
        with subtests.test(args=" ".join(args)):
            code, out = invoke(runner, *args)
            assert code == 2
            assert message in out


def test_tokens_revoke_takes_an_id_in_bigint_range_or_a_name(runner: CliRunner) -> None:
    code, out = invoke(runner, "tokens", "create", "ci")
    token_id = int(out.split("(id ", 1)[1].split(")")[0])
    invoke(runner, "tokens", "create", "bot")
    result = runner.invoke(ui_cli(), ["tokens", "revoke", "99999999999999999999999"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr == (
        "Error: ID_OR_NAME: a token id is 1 to 9223372036854775807, not 99999999999999999999999\n"
    )
    code, out = invoke(runner, "tokens", "revoke", str(token_id))
    assert code == 0 and out.strip() == f"revoked token 'ci' (id {token_id})"
    code, out = invoke(runner, "tokens", "revoke", "bot")
    assert code == 0 and "revoked token 'bot'" in out


def test_an_empty_stdin_password_is_refused(runner: CliRunner) -> None:
    code, out = invoke(runner, "users", "add", "ann", "--password-stdin", stdin="\n")
    assert code == 2 and "password:" in out


def test_tokens_create_list_revoke(runner: CliRunner, dsn: str) -> None:
    code, out = invoke(runner, "tokens", "create", "ci", "--role", "viewer")
    assert code == 0 and "created viewer token 'ci'" in out
    token = _token_of(out)
    code, quiet = invoke(runner, "tokens", "create", "bot", "-q")
    assert code == 0 and quiet.strip().startswith("vq_") and len(quiet.split()) == 1
    code, out = invoke(runner, "tokens", "list")
    assert "ci" in out and "bot" in out and token not in out
    assert invoke(runner, "tokens", "create", "ci")[0] == 2  # live name taken
    code, out = invoke(runner, "tokens", "revoke", "ci")
    assert code == 0 and "revoked token 'ci'" in out
    code, out = invoke(runner, "tokens", "list")
    assert "revoked" in out


def test_commands_refuse_an_unmigrated_database(
    empty_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VQ_DATABASE_URL", empty_dsn)
    monkeypatch.setenv("VQ_DATA_DIR", str(tmp_path))
    code, out = invoke(CliRunner(), "users", "list")
    assert code == 1 and "vq migrate" in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_e2e_reports_an_unreachable_server(runner: CliRunner) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    code, out = invoke(runner, "e2e", "--url", url, "--token", "vq_x", "--timeout", "1")
    assert code == 1
    assert "[FAIL] server ready" in out and "e2e: FAILED" in out


def test_the_plugin_is_registered_through_the_entry_point(settings: Settings) -> None:
    pm = make_plugin_manager(settings)
    assert pm.get_plugin("ui") is not None
    names = {impl.plugin_name for impl in pm.hook.vq_web_server.get_hookimpls()}
    assert "ui" in names


async def test_web_server_serves_and_creates_the_first_admin(
    settings: Settings, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    server = WebServer(settings.model_copy(update={"port": 0}), store)
    assert server.url.startswith("http://127.0.0.1:")
    stop = asyncio.Event()
    task = asyncio.create_task(server.serve(stop))
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            r = await _get_when_up(client, "/api/v1/healthz")
            assert r.json() == {"status": "ok"}
            printed = capsys.readouterr().out
            assert "created the first user 'admin' with password" in printed
            password = printed.split("password ", 1)[1].split()[0]
            login = await client.post("/login", data={"username": "admin", "password": password})
            assert login.status_code == 303
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert task.result() is None
    second = WebServer(settings.model_copy(update={"port": 0}), store)
    stop2 = asyncio.Event()
    stop2.set()
    await second.serve(stop2)
    assert "created the first user" not in capsys.readouterr().out  # only once


async def _get_when_up(client: httpx.AsyncClient, path: str) -> httpx.Response:
    for _ in range(200):
        with contextlib.suppress(httpx.ConnectError):
            return await client.get(path)
        await asyncio.sleep(0.05)  # polling for the listener, bounded by the loop count
    raise AssertionError("the web server did not answer within 10 s")


def test_a_busy_port_fails_at_construction(settings: Settings) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError):
            WebServer(settings.model_copy(update={"port": port}), None)  # type: ignore[arg-type]


async def test_user_functions_agree_with_the_cli(store: Store) -> None:
    created = await users.create_token(store, "ci", "viewer")
    user = await users.verify_token(store, created.token)
    assert user is not None and (user.username, user.role, user.via) == ("ci", "viewer", "token")
    assert user.label == "token:ci"
