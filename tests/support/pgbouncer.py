"""Debian's PgBouncer in transaction mode, started by a test in front of its database.

It runs in the foreground as a child process (``procs``-style: the context manager ends
it), listens on a free port of 127.0.0.1, lets every client in (``auth_type = trust``)
and reaches PostgreSQL with the test DSN's own user and password. PgBouncer refuses to
run as root, so under root it is started with ``-u nobody``; its files then live in a
directory of their own that nobody may read (pytest's base temp directory is private).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from support.processes import free_port
from support.tcp_proxy import via_port

#: Where Debian installs it; ``make debs`` installs the package when missing.
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@dataclass
class PgBouncer:
    """A running PgBouncer: its port, its process, its log."""

    port: int
    pool_size: int
    proc: subprocess.Popen[bytes]
    log: Path

    def dsn(self, dsn: str) -> str:
        """``dsn`` through this PgBouncer (same database, user and password; no TLS, which
        this PgBouncer does not offer)."""
        return via_port(dsn, self.port, tls=False)

    def log_text(self) -> str:
        """What PgBouncer logged so far (for a failure's message)."""
        return self.log.read_text(errors="replace")


def _ini(target_host: str, target_port: int, port: int, pool_size: int, auth_file: Path) -> str:
    return f"""\
[databases]
* = host={target_host} port={target_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {auth_file}
pool_mode = transaction
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 1000
log_connections = 0
log_disconnections = 0
"""


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"pgbouncer exited {proc.returncode}: {log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)  # polling a starting server, bounded by the deadline
    raise AssertionError(f"pgbouncer not listening within {timeout}s: {log.read_text()}")


@contextlib.contextmanager
def running_pgbouncer(server_dsn: str, pool_size: int = 4) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode before the server of ``server_dsn``, at most
    ``pool_size`` server connections per database and user; stopped at the end."""
    if not os.path.exists(PGBOUNCER):
        raise AssertionError(f"{PGBOUNCER} is missing: install Debian's pgbouncer (make debs)")
    parts = urlsplit(server_dsn)
    assert parts.hostname, "PgBouncer needs a server reached over TCP"
    user = unquote(parts.username or "postgres")
    password = unquote(parts.password or "")
    folder = Path(tempfile.mkdtemp(prefix="vq-pgbouncer-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        # Readable by nobody, whom PgBouncer becomes under root (it reads the auth file
        # again after dropping privileges).
        folder.chmod(0o755)
        auth_file = folder / "users.txt"
        auth_file.write_text(f'"{user}" "{password}"\n')
        ini = folder / "pgbouncer.ini"
        port = free_port()
        ini.write_text(_ini(parts.hostname, parts.port or 5432, port, pool_size, auth_file))
        for path in (auth_file, ini):
            path.chmod(0o644)
        log = folder / "pgbouncer.log"
        as_user = ["-u", "nobody"] if os.geteuid() == 0 else []
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [PGBOUNCER, *as_user, str(ini)], stdout=out, stderr=subprocess.STDOUT
            )
        _wait_listening(port, proc, log, timeout=30)
        yield PgBouncer(port, pool_size, proc, log)
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
