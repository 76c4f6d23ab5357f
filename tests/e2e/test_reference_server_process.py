"""`vq services serve` as a real process: binds, serves renders and faults, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from vq_plugins.reference.reference_services import set_remote_faults

RENDER = {
    "job_id": "j-1",
    "job_type": "doubt",
    "input": "Why?",
    "style": "detailed",
    "length": 3,
    "voice": "default",
}


def test_vq_services_serve_runs_a_server(tmp_path: Path) -> None:
    vq = Path(sys.executable).with_name("vq")
    env = {**os.environ, "VQ_CONFIG": "/nonexistent/vq.toml"}
    proc = subprocess.Popen(
        [
            str(vq),
            "services",
            "serve",
            "--port",
            "0",
            "--media-dir",
            str(tmp_path / "m"),
            "--width",
            "96",
            "--height",
            "64",
            "--fps",
            "4",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # blocks until the server has bound its port
        assert first.startswith("reference services on http://127.0.0.1:"), first
        url = first.split()[3]
        assert httpx.get(f"{url}/health", timeout=10).json() == {"status": "ok"}
        assert set_remote_faults(url, unhealthy=True)["unhealthy"] is True
        assert httpx.get(f"{url}/health", timeout=10).status_code == 503
        rendered = httpx.post(f"{url}/render", json=RENDER, timeout=30).json()
        assert rendered["video_url"].startswith(f"{url}/media/")
        assert (tmp_path / "m" / rendered["video_url"].rsplit("/", 1)[1]).is_file()
    finally:
        proc.send_signal(signal.SIGTERM)  # what a service manager sends
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "reference services stopped" in out
