"""The container health check of the vq image (deploy/docker/Dockerfile, docs/deployment.md).

``healthcheck.py web``: GET ``/api/v1/healthz`` on 127.0.0.1 and the port the process
serves (``VQ_PORT``, default 8080) answers 200 within 3 seconds.

``healthcheck.py worker``: the worker (PID 1 of the container) exists and is neither a
zombie nor stopped. A worker's real health is its heartbeat in the database, which vq
itself watches (``vq workers``, the ``worker_stale`` alert, lease recovery of its jobs);
asking the database from every worker's health check would add a connection per worker
per interval and turn one database outage into N unhealthy workers.

Standard library only, so it runs in either image target; exit 0 healthy, 1 not.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def web_ok(port: int, timeout: float = 3.0) -> bool:
    """Whether the web process on 127.0.0.1:``port`` answers its liveness probe."""
    url = f"http://127.0.0.1:{port}/api/v1/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def process_ok(pid: int) -> bool:
    """Whether process ``pid`` exists and runs (state not zombie, stopped or dead)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            # The state follows the command name in parentheses, which may hold spaces.
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in {"Z", "T", "t", "X", "x"}


def main(argv: list[str]) -> int:
    """``web`` or ``worker [PID]``; the exit code of the check."""
    if argv[:1] == ["web"]:
        return 0 if web_ok(int(os.environ.get("VQ_PORT", "8080"))) else 1
    if argv[:1] == ["worker"]:
        return 0 if process_ok(int(argv[1]) if len(argv) > 1 else 1) else 1
    print("usage: healthcheck.py web | worker [PID]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
