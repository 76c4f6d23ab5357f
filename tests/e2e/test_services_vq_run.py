"""A fresh ``vq run`` with no service configured renders a doubt with the local renderer.

``vq run`` and ``vq submit`` run as processes, as a new user would start them; the
video is fetched from vq's own /media over loopback and decoded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import av
import pytest
import webvtt
from support.helpers import eventually
from support.processes import free_port, wait_ready
from support.services import download

from vq_core.models import FINAL_STATUSES, Job, JobStatus
from vq_core.store import Store
from vq_plugins.services.render_engine import probe

VQ = [sys.executable, "-m", "vq_core.cli"]
pytestmark = pytest.mark.slow


async def test_submitted_doubt_on_a_fresh_vq_run_plays(
    dsn: str, store: Store, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "vq.toml"
    # Small frames keep the default 60-second doubt cheap; nothing else is configured.
    config.write_text(
        f'database_url = "{dsn}"\ndata_dir = "{tmp_path / "data"}"\nport = {port}\n'
        "poll_interval = 0.5\n\n[plugin_config.local]\nwidth = 160\nheight = 96\nfps = 8\n",
        encoding="utf-8",
    )
    env = {**os.environ, "VQ_CONFIG": str(config)}
    log = tmp_path / "vq-run.log"
    with log.open("wb") as out:
        run = subprocess.Popen([*VQ, "run"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}/api/v1/readyz", run, log)
        submitted = subprocess.run(
            [
                *VQ,
                "submit",
                "doubt",
                "--json",
                "--payload",
                json.dumps({"question": "Why does ice float on water?"}),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert submitted.returncode == 0, submitted.stderr
        job_id = uuid.UUID(json.loads(submitted.stdout)["id"])

        async def finished() -> Job | None:
            job = await store.get_job(job_id)
            return job if job.status in FINAL_STATUSES else None

        job = await eventually(finished, timeout=120)
        assert job.status is JobStatus.COMPLETED, job.error
        assert job.result is not None
        assert job.result["video_url"] == f"http://127.0.0.1:{port}/media/{job_id}.mp4"
        video = await download(job.result["video_url"], tmp_path / "got.mp4")
        codec, duration = probe(video)
        assert codec == "h264"
        assert duration == pytest.approx(60.0, abs=0.2)  # the contract's default length
        # The new user's first video speaks the question and is captioned beside it.
        with av.open(str(video)) as container:
            assert [s.codec_context.name for s in container.streams.audio] == ["aac"]
        assert job.result["narrated"] is True
        assert job.result["captions_url"] == f"http://127.0.0.1:{port}/media/{job_id}.vtt"
        captions = await download(job.result["captions_url"], tmp_path / "got.vtt")
        cues = webvtt.read(str(captions))
        assert " ".join(c.text for c in cues).startswith("Why does ice float on water?")
    finally:
        run.send_signal(signal.SIGTERM)
        code = run.wait(30)
    assert code == 0, log.read_text()
