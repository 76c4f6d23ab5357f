"""The platform's end-to-end scenario against a real ``vq run`` with the reference services.

Both run as separate processes talking HTTP over loopback: the reference services
(``vq services serve``) play the orchestrator; ``vq run`` serves the API and the page
and runs the worker. The scenario itself is ``vq e2e``, the command an operator runs
against any deployment.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e
VQ = [sys.executable, "-m", "vq_core.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Process:
    """A child process whose output lines are collected as they come."""

    popen: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)
    pump: threading.Thread | None = None

    @classmethod
    def start(cls, args: list[str], env: dict[str, str]) -> Process:
        popen = subprocess.Popen(
            args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        proc = cls(popen)
        proc.pump = threading.Thread(target=proc._pump, daemon=True)
        proc.pump.start()
        return proc

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for_line(self, needle: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if needle in line:
                return line
        raise AssertionError(f"no line with {needle!r} within {timeout}s; got: {self.seen}")

    def stop(self, timeout: float = 30.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
            raise
        finally:
            if self.pump is not None:
                self.pump.join(10)  # the pipe ends when the process does
            if self.popen.stdout is not None:
                self.popen.stdout.close()


def wait_http(url: str, timeout: float = 60.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url, timeout=5)
            if r.status_code == 200:
                return r
            last = r.status_code
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.1)  # polling a starting server, bounded by the deadline
    raise AssertionError(f"{url} not ready within {timeout}s (last: {last!r})")


@pytest.fixture
def deployment(dsn: str, tmp_path: Path) -> Iterator[tuple[str, Process, dict[str, str]]]:
    """Reference services and ``vq run`` on free loopback ports, over the test database."""
    ref_port, web_port = free_port(), free_port()
    config = tmp_path / "vq.toml"
    config.write_text(
        f"""
database_url = "{dsn}"
data_dir = "{tmp_path / "data"}"
port = {web_port}
poll_interval = 0.5
services = {{ doubt = "orchestrator" }}

[plugin_config.orchestrator]
base_url = "http://127.0.0.1:{ref_port}"
job_types = ["doubt"]
""",
        encoding="utf-8",
    )
    env = {**os.environ, "VQ_CONFIG": str(config)}
    ref = Process.start(
        [
            *VQ,
            "services",
            "serve",
            "--port",
            str(ref_port),
            "--width",
            "320",
            "--height",
            "180",
            "--media-dir",
            str(tmp_path / "reference-media"),
        ],
        env,
    )
    run = None
    try:
        wait_http(f"http://127.0.0.1:{ref_port}/health")
        run = Process.start([*VQ, "run"], env)
        url = run.wait_for_line("vq admin page:").split(": ", 1)[1].removesuffix("/queue")
        wait_http(f"{url}/api/v1/readyz")
        yield url, run, env
        assert run.stop() == 0, run.seen  # a graceful stop
        run = None
    finally:
        if run is not None:
            run.stop()
        ref.stop()


def vq(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VQ, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_end_to_end_through_the_api(deployment: tuple[str, Process, dict[str, str]]) -> None:
    url, run, env = deployment
    banner = run.wait_for_line("created the first user 'admin' with password")
    admin_password = banner.rsplit(" ", 1)[1]

    created = vq(env, "tokens", "create", "e2e", "--role", "operator", "--quiet")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()

    scenario = vq(env, "e2e", "--url", url, "--token", token, "--timeout", "60")
    print(scenario.stdout)
    assert scenario.returncode == 0, scenario.stdout + scenario.stderr
    for step in (
        "server ready",
        "job created through the API",
        "picked up within 60 s",
        "completed by the video service",
        "video URL answers and decodes as video",
        "API shows it completed",
    ):
        assert f"[ok]   {step}" in scenario.stdout
    assert "h264" in scenario.stdout and "HTTP 200" in scenario.stdout

    # A person signs in with the printed password and sees the job completed.
    with httpx.Client(base_url=url, timeout=30) as browser:
        login = browser.post("/login", data={"username": "admin", "password": admin_password})
        assert login.status_code == 303
        jobs = browser.get("/api/v1/jobs", params={"status": "completed"}).json()["jobs"]
        assert len(jobs) == 1 and jobs[0]["job_type"] == "doubt"
        assert jobs[0]["result"]["video_url"].startswith("http://127.0.0.1:")
        page = browser.get("/queue")
        assert page.status_code == 200  # signed in: the page itself, not the login form


def test_e2e_fails_with_a_revoked_token(deployment: tuple[str, Process, dict[str, str]]) -> None:
    url, _, env = deployment
    token = vq(env, "tokens", "create", "gone", "--quiet").stdout.strip()
    assert vq(env, "tokens", "revoke", "gone").returncode == 0
    scenario = vq(env, "e2e", "--url", url, "--token", token)
    assert scenario.returncode == 1
    assert "[FAIL] job created through the API" in scenario.stdout
    assert "401" in scenario.stdout
