"""Starting vq as a process: a free loopback port, and waiting for it to be ready."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A port of 127.0.0.1 free now (for a server the test starts next)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Poll ``url`` until it answers 200; fail with the process's log if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"vq run exited {proc.returncode}: {log.read_text()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling a starting server, bounded by the deadline
    raise AssertionError(f"{url} not ready within {timeout}s: {log.read_text()}")
