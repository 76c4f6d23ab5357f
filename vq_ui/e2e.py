"""The platform's end-to-end scenario against a running vq, over its public API only.

``vq e2e --url URL --token T`` runs it against any deployment; ``tests/e2e/test_e2e.py``
runs it against a ``vq run`` it starts with the reference services. Steps:

1. the server is ready (``/api/v1/readyz``);
2. a ``doubt`` job is created through the API with the token;
3. a worker picks it up within the pickup timeout (60 s by default);
4. it completes (the video service was called: the job was claimed and has a result);
5. its video URL answers 200 (or 206) and decodes as a video (PyAV);
6. ``GET /api/v1/jobs/{id}`` and the filtered job list show it completed.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

MAX_VIDEO_BYTES = 500 * 1024 * 1024


class StepFailed(Exception):
    """A step did not hold; the message says what was seen."""


@dataclass
class Scenario:
    """One run of the scenario against ``url`` with ``token``."""

    url: str
    token: str
    pickup_timeout: float = 60.0
    complete_timeout: float = 600.0
    echo: Callable[[str], None] = print
    job_type: str = "doubt"
    poll_interval: float = 0.25
    job_id: str | None = None
    job: dict[str, Any] = field(default_factory=dict)

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def run(self) -> bool:
        """Run every step, printing each; True when all passed."""
        steps: list[tuple[str, Callable[[httpx.AsyncClient], Awaitable[str]]]] = [
            ("server ready", self._ready),
            ("job created through the API", self._create),
            (f"picked up within {self.pickup_timeout:g} s", self._picked_up),
            ("completed by the video service", self._completed),
            ("video URL answers and decodes as video", self._video),
            ("API shows it completed", self._shown_completed),
        ]
        timeout = httpx.Timeout(30.0, connect=10.0)
        async with httpx.AsyncClient(base_url=self.url, timeout=timeout) as client:
            for name, step in steps:
                started = time.monotonic()
                try:
                    detail = await step(client)
                except (StepFailed, httpx.HTTPError) as exc:
                    took = time.monotonic() - started
                    self.echo(f"[FAIL] {name} ({took:.2f} s): {type(exc).__name__}: {exc}")
                    return False
                self.echo(f"[ok]   {name} ({time.monotonic() - started:.2f} s): {detail}")
        return True

    async def _ready(self, client: httpx.AsyncClient) -> str:
        r = await client.get("/api/v1/readyz")
        if r.status_code != 200:
            raise StepFailed(f"/api/v1/readyz answered {r.status_code}: {r.text[:300]}")
        return str(r.json().get("status", "ready"))

    async def _create(self, client: httpx.AsyncClient) -> str:
        marker = uuid.uuid4().hex[:12]
        body = {
            "job_type": self.job_type,
            "priority": "high",
            "payload": {"question": f"Why is the sky blue? (vq e2e {marker})"},
        }
        headers = {**self._headers, "Idempotency-Key": f"vq-e2e-{marker}"}
        r = await client.post("/api/v1/jobs", json=body, headers=headers)
        if r.status_code != 201:
            raise StepFailed(f"POST /api/v1/jobs answered {r.status_code}: {r.text[:300]}")
        self.job_id = r.json()["id"]
        return f"job {self.job_id}"

    async def _fetch(self, client: httpx.AsyncClient) -> dict[str, Any]:
        r = await client.get(f"/api/v1/jobs/{self.job_id}", headers=self._headers)
        if r.status_code != 200:
            raise StepFailed(f"GET /api/v1/jobs/{self.job_id} answered {r.status_code}")
        self.job = r.json()
        return self.job

    async def _wait(
        self, client: httpx.AsyncClient, done: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = await self._fetch(client)
            if done(job):
                return job
            if time.monotonic() > deadline:
                raise StepFailed(f"still {job['status']} after {timeout:g} s")
            await asyncio.sleep(self.poll_interval)  # client-side polling, bounded above

    async def _picked_up(self, client: httpx.AsyncClient) -> str:
        job = await self._wait(client, lambda j: j["status"] != "queued", self.pickup_timeout)
        claimed = [e for e in job["events"] if e["event"] == "claimed"]
        worker = claimed[0]["worker_id"] if claimed else job.get("worker_id")
        return f"{job['status']} on worker {worker}"

    async def _completed(self, client: httpx.AsyncClient) -> str:
        final = {"completed", "failed", "cancelled"}
        job = await self._wait(client, lambda j: j["status"] in final, self.complete_timeout)
        if job["status"] != "completed":
            error = job.get("error") or {}
            raise StepFailed(f"job {job['status']}: {error.get('type')}: {error.get('message')}")
        if not any(e["event"] == "claimed" for e in job["events"]):
            raise StepFailed("completed without a 'claimed' event")
        result = job.get("result") or {}
        if not isinstance(result.get("video_url"), str):
            raise StepFailed(f"no video_url in the result: {result}")
        return f"video {result['video_url']}"

    async def _video(self, client: httpx.AsyncClient) -> str:
        video_url = urljoin(self.url + "/", self.job["result"]["video_url"])
        with tempfile.TemporaryDirectory(prefix="vq-e2e-") as folder:
            path = Path(folder) / "video"
            status, size = await _download(client, video_url, path)
            info = await asyncio.to_thread(decode_video, path)
        return f"HTTP {status}, {size} bytes, {info}"

    async def _shown_completed(self, client: httpx.AsyncClient) -> str:
        job = await self._fetch(client)
        if job["status"] != "completed":
            raise StepFailed(f"GET /api/v1/jobs/{self.job_id} says {job['status']}")
        params = {"status": "completed", "q": str(self.job_id)}
        r = await client.get("/api/v1/jobs", params=params, headers=self._headers)
        listed = [j["id"] for j in r.json().get("jobs", [])] if r.status_code == 200 else []
        if self.job_id not in listed:
            raise StepFailed(f"not in GET /api/v1/jobs?status=completed ({r.status_code})")
        return "job and job list say completed"


async def _download(client: httpx.AsyncClient, url: str, path: Path) -> tuple[int, int]:
    size = 0
    async with client.stream("GET", url) as r:
        if r.status_code not in (200, 206):
            raise StepFailed(f"{url} answered {r.status_code}")
        with path.open("wb") as out:
            async for chunk in r.aiter_bytes():
                size += len(chunk)
                if size > MAX_VIDEO_BYTES:
                    raise StepFailed(f"{url} is larger than {MAX_VIDEO_BYTES} bytes")
                out.write(chunk)
        return r.status_code, size


def decode_video(path: Path) -> str:
    """Decode the first frame of the file's video stream; describe it or raise StepFailed."""
    try:
        import av
    except ImportError:
        raise StepFailed("PyAV is not installed (pip install 'vq[render]')") from None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise StepFailed("the file has no video stream")
            stream = container.streams.video[0]
            frame = next(container.decode(stream), None)
            if frame is None:
                raise StepFailed("no frame could be decoded")
            seconds = float(container.duration / 1_000_000) if container.duration else 0.0
            codec = stream.codec_context.name
            return f"{codec} {frame.width}x{frame.height}, {seconds:.1f} s"
    except av.error.FFmpegError as exc:
        raise StepFailed(f"not a decodable video: {exc}") from None


async def run_scenario(
    url: str,
    token: str,
    pickup_timeout: float = 60.0,
    complete_timeout: float = 600.0,
    echo: Callable[[str], None] = print,
) -> bool:
    """Run the scenario; True when every step passed."""
    scenario = Scenario(url.rstrip("/"), token, pickup_timeout, complete_timeout, echo)
    return await scenario.run()
