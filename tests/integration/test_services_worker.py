"""A real worker, a real database and the video services over loopback HTTP.

Each test ends with a job in its final state and checks the category, the retries
and what the operator sees; faults come from the reference server.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.helpers import eventually, running_worker
from support.services import LoopbackPeer, download, loopback_peer, reference_server

from vq_core.config import Settings
from vq_core.models import FINAL_STATUSES, Job, JobStatus, NewJob
from vq_core.plugins import collect_services, make_plugin_manager
from vq_core.store import Store
from vq_core.video_service import VideoService, url_origin
from vq_plugins.reference.reference_services import ReferenceServer
from vq_plugins.services import http_service
from vq_plugins.services.manim_revideo import ManimRevideoService
from vq_plugins.services.noop import NoopService
from vq_plugins.services.orchestrator import OrchestratorService
from vq_plugins.services.render_engine import probe

QUESTION = {"question": "Why is the sky blue?", "length": 5}
MP4_HEAD = b"\x00\x00\x00\x20ftypisom" + bytes(20)
SECRET = "internal-only body"


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[ReferenceServer]:
    with reference_server(tmp_path / "media") as server:
        yield server


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """Test settings whose circuit breaker stays out of the way of deliberate failures."""
    return settings.model_copy(update={"breaker_threshold": 1000})


def orchestrator(reference: ReferenceServer, read_timeout: float = 30.0) -> dict[str, VideoService]:
    service = OrchestratorService(reference.url, job_types=("doubt",), read_timeout=read_timeout)
    return {service.name: service}


async def final(store: Store, job_id: uuid.UUID, timeout: float = 30.0) -> Job:
    async def check() -> Job | None:
        job = await store.get_job(job_id)
        return job if job.status in FINAL_STATUSES else None

    return await eventually(check, timeout=timeout)


async def retries(store: Store, job_id: uuid.UUID) -> list[dict[str, Any]]:
    """The stored ``retry_scheduled`` events: the error record, plus the chosen wait."""
    out = []
    for event in await store.get_events(job_id):
        if event.event == "retry_scheduled":
            details = dict(event.details or {})
            run_at = datetime.fromisoformat(details["run_at"])
            details["wait_s"] = (run_at - event.at).total_seconds()
            out.append(details)
    return out


async def test_doubt_on_the_local_renderer_completes_with_a_playable_video(
    store: Store, fast: Settings, dsn: str, reference: ReferenceServer, tmp_path: Path
) -> None:
    # As `vq run` does: services from the entry points; the reference server stands in
    # for the web server that serves the media folder.
    settings = fast.model_copy(
        update={
            "media_dir": reference.media_dir,
            "public_url": reference.url,
            "plugin_config": {"local": {"width": 160, "height": 96, "fps": 8}},
        }
    )
    pm = make_plugin_manager(settings)
    services = collect_services(pm, settings)
    assert services["local"].job_types == ("doubt",)
    async with running_worker(store, settings, services, dsn, pm=pm):
        res = await store.enqueue(NewJob("doubt", {"question": "What is inertia?", "length": 6}))
        job = await final(store, res.id)
    assert job.status is JobStatus.COMPLETED, job.error
    assert job.result is not None
    assert job.result["video_url"] == f"{reference.url}/media/{job.id}.mp4"
    assert job.payload["video_url"] == job.result["video_url"]
    assert job.payload["thumbnail_url"] == job.result["thumbnail_url"]
    assert job.progress == {"percent": 100.0, "stage": "done"}
    codec, duration = probe(await download(job.result["video_url"], tmp_path / "got.mp4"))
    assert codec == "h264"
    assert duration == pytest.approx(6.0, abs=0.15)
    assert job.result["duration"] == pytest.approx(duration, abs=0.15)


async def test_server_errors_are_retried_with_backoff_then_complete(
    store: Store, fast: Settings, dsn: str, reference: ReferenceServer
) -> None:
    reference.set_faults(status=500, times=2)
    async with running_worker(store, fast, orchestrator(reference), dsn):
        res = await store.enqueue(NewJob("doubt", QUESTION, max_retries=3))
        job = await final(store, res.id)
    assert job.status is JobStatus.COMPLETED, job.error
    assert job.retry_count == 2
    scheduled = await retries(store, res.id)
    assert [(d["type"], d["status_code"]) for d in scheduled] == [("API_ERROR", 500)] * 2
    for details in scheduled:
        # Full jitter: anywhere from 0 up to the exponential ceiling of that attempt.
        ceiling = min(fast.retry_max_delay, fast.retry_base_delay * 2 ** (details["attempt"] - 1))
        assert -0.01 <= details["wait_s"] <= ceiling + 0.01
    seen = reference.requests("/render")
    assert [e["status"] for e in seen] == [500, 500, 200]
    assert {e["idempotency_key"] for e in seen} == {str(res.id)}


async def test_rate_limit_waits_for_retry_after(
    store: Store, fast: Settings, dsn: str, reference: ReferenceServer
) -> None:
    settings = fast.model_copy(update={"retry_max_delay": 5.0})
    reference.set_faults(retry_after="1", times=1)
    async with running_worker(store, settings, orchestrator(reference), dsn):
        res = await store.enqueue(NewJob("doubt", QUESTION, max_retries=2))
        job = await final(store, res.id)
    assert job.status is JobStatus.COMPLETED, job.error
    [retry] = await retries(store, res.id)
    assert (retry["type"], retry["retry_after"]) == ("RATE_LIMITED", 1.0)
    assert retry["wait_s"] >= 0.99
    first, second = reference.requests("/render")
    assert first["status"] == 429
    assert second["at"] - first["at"] >= 0.95


async def test_invalid_payload_fails_at_once_without_a_request(
    store: Store, fast: Settings, dsn: str, reference: ReferenceServer
) -> None:
    async with running_worker(store, fast, orchestrator(reference), dsn):
        res = await store.enqueue(NewJob("doubt", {"length": 5}, max_retries=3))
        job = await final(store, res.id)
    assert job.status is JobStatus.FAILED
    assert job.retry_count == 0
    error = job.error or {}
    assert error["type"] == "INVALID_INPUT" and error["retryable"] is False
    assert "question or topic is required" in error["message"]
    assert (error["service"], error["call"]) == ("orchestrator", "validate payload")
    assert reference.requests() == []


async def test_service_4xx_is_stored_with_service_call_status_and_body(
    store: Store, fast: Settings, dsn: str, reference: ReferenceServer
) -> None:
    reference.set_faults(status=400, times=1)
    async with running_worker(store, fast, orchestrator(reference), dsn):
        res = await store.enqueue(NewJob("doubt", QUESTION, max_retries=3))
        job = await final(store, res.id)
    assert job.status is JobStatus.FAILED
    error = job.error or {}
    assert error["type"] == "INVALID_INPUT"
    assert (error["service"], error["call"], error["status_code"]) == (
        "orchestrator",
        "POST /render",
        400,
    )
    assert "injected fault" in error["body_excerpt"]


async def test_unverifiable_video_is_bad_response_and_retried(
    store: Store, fast: Settings, dsn: str, reference: ReferenceServer
) -> None:
    reference.set_faults(bad_video_url=True, times=1)
    async with running_worker(store, fast, orchestrator(reference), dsn):
        res = await store.enqueue(NewJob("doubt", QUESTION, max_retries=2))
        job = await final(store, res.id)
    assert job.status is JobStatus.COMPLETED, job.error
    assert job.retry_count == 1
    [retry] = await retries(store, res.id)
    assert (retry["type"], retry["service"]) == ("BAD_RESPONSE", "verify")
    assert retry["status_code"] == 404
    assert "video verification failed" in retry["message"]


@pytest.mark.parametrize(
    ("faults", "category", "read_timeout"),
    [
        ({"not_video": True}, "BAD_RESPONSE", 30.0),
        ({"drop_connection": True}, "NETWORK", 30.0),
        ({"latency_s": 5.0}, "TIMEOUT", 0.5),
        ({"malformed": True}, "BAD_RESPONSE", 30.0),
        ({"missing_url": True}, "BAD_RESPONSE", 30.0),
    ],
)
async def test_each_failure_ends_failed_with_its_category(
    store: Store,
    fast: Settings,
    dsn: str,
    reference: ReferenceServer,
    faults: dict[str, Any],
    category: str,
    read_timeout: float,
) -> None:
    reference.set_faults(**faults)
    async with running_worker(store, fast, orchestrator(reference, read_timeout), dsn):
        res = await store.enqueue(NewJob("doubt", QUESTION, max_retries=0))
        job = await final(store, res.id)
    assert job.status is JobStatus.FAILED
    error = job.error or {}
    assert error["type"] == category
    assert error["retryable"] is True and error["will_retry"] is False
    assert error["service"] in ("orchestrator", "verify")


async def test_no_failure_crashes_the_worker(
    store: Store, fast: Settings, dsn: str, reference: ReferenceServer
) -> None:
    reference.set_faults(error_rate=0.5)
    async with running_worker(store, fast, orchestrator(reference), dsn):
        batch = await store.enqueue_many(
            [
                NewJob("doubt", {"question": f"Question {i}?", "length": 5}, max_retries=1)
                for i in range(8)
            ]
        )
        outcomes = [await final(store, r.id) for r in batch]
        reference.clear_faults()
        after = await store.enqueue(NewJob("doubt", QUESTION))
        last = await final(store, after.id)
    assert {j.status for j in outcomes} <= {JobStatus.COMPLETED, JobStatus.FAILED}
    for job in outcomes:
        if job.status is JobStatus.FAILED:
            assert (job.error or {})["type"] == "API_ERROR" and job.retry_count == 1
    assert last.status is JobStatus.COMPLETED  # the worker is still claiming after all that


async def test_manim_revideo_pipeline_through_the_worker(
    store: Store, fast: Settings, dsn: str, reference: ReferenceServer, tmp_path: Path
) -> None:
    service = ManimRevideoService(
        f"{reference.url}/manim", f"{reference.url}/revideo", job_types=("doubt",)
    )
    async with running_worker(store, fast, {service.name: service}, dsn):
        res = await store.enqueue(NewJob("doubt", {"question": "Plot y = x squared"}))
        job = await final(store, res.id)
    assert job.status is JobStatus.COMPLETED, job.error
    assert job.result is not None and job.result["animated"] is True
    codec, _ = probe(await download(job.result["video_url"], tmp_path / "v.mp4"))
    assert codec == "h264"
    # The worker stores at most one progress value per 0.5 s, so a quick pipeline may
    # leave its first stage on the job; any of ours shows progress was stored.
    assert job.progress is not None
    assert job.progress["stage"] in ("animating", "composing", "verifying")


class RawHttpxService:
    """A third-party style service that lets httpx errors escape."""

    name = "raw"
    job_types = ("raw",)

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    async def render(self, job: Any, progress: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                f"{self.base_url}/render", json={}, headers={"X-Fault": job.payload["fault"]}
            )
            response.raise_for_status()
        return {}

    async def health(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize(
    ("fault", "with_hook", "category"),
    [
        ("status=503", True, "API_ERROR"),
        ("status=404", True, "INVALID_INPUT"),
        ("status=429", True, "RATE_LIMITED"),
        ("status=503", False, "UNKNOWN"),  # what the core alone makes of it
    ],
)
async def test_raw_httpx_errors_are_categorised_through_the_hook(
    store: Store,
    fast: Settings,
    dsn: str,
    reference: ReferenceServer,
    fault: str,
    with_hook: bool,
    category: str,
) -> None:
    pm = make_plugin_manager(fast, load_entrypoints=False)
    if with_hook:
        pm.register(http_service)
    services: dict[str, VideoService] = {"raw": RawHttpxService(reference.url)}
    async with running_worker(store, fast, services, dsn, pm=pm):
        res = await store.enqueue(NewJob("raw", {"fault": fault}, max_retries=0))
        job = await final(store, res.id)
    assert job.status is JobStatus.FAILED
    assert (job.error or {})["type"] == category


@pytest.fixture
async def internal() -> AsyncIterator[LoopbackPeer]:
    """A loopback server no video URL may reach: its body must never end up on a job."""
    async with loopback_peer() as peer:
        peer.serve("/secret", SECRET.encode(), "text/plain")
        yield peer


@pytest.fixture
async def hops() -> AsyncIterator[LoopbackPeer]:
    async with loopback_peer() as peer:
        yield peer


async def video_job(store: Store, settings: Settings, dsn: str, video_url: str) -> Job:
    """A noop job whose result has ``video_url``, run to its end by a real worker."""
    services: dict[str, VideoService] = {"noop": NoopService()}
    async with running_worker(store, settings, services, dsn):
        res = await store.enqueue(
            NewJob("noop", {"result": {"video_url": video_url}}, max_retries=3)
        )
        return await final(store, res.id)


def assert_refused_at_once(job: Job, internal: LoopbackPeer) -> None:
    assert job.status is JobStatus.FAILED
    assert job.retry_count == 0  # not retried: the same URL would be refused again
    error = job.error or {}
    assert (error["type"], error["service"]) == ("BAD_RESPONSE", "verify")
    assert (error["retryable"], error["will_retry"]) == (False, False)
    assert f"points to {url_origin(internal.url)}, which is not an allowed" in error["message"]
    assert "body_excerpt" not in error
    assert SECRET not in str(error)
    assert internal.paths == []  # refused before any request


async def test_video_url_on_an_internal_origin_fails_at_once_unread(
    store: Store, fast: Settings, dsn: str, internal: LoopbackPeer
) -> None:
    # The default: only the services' origins (noop has none) and the public URL.
    job = await video_job(store, fast, dsn, f"{internal.url}/secret")
    assert_refused_at_once(job, internal)


async def test_redirect_to_an_internal_origin_fails_at_once_unread(
    store: Store, fast: Settings, dsn: str, internal: LoopbackPeer, hops: LoopbackPeer
) -> None:
    hops.redirect("/v.mp4", f"{internal.url}/secret")
    settings = fast.model_copy(update={"video_origins": [url_origin(hops.url)]})
    job = await video_job(store, settings, dsn, f"{hops.url}/v.mp4")
    assert_refused_at_once(job, internal)
    assert hops.paths == ["/v.mp4"]


async def test_redirects_within_video_origins_complete(
    store: Store, fast: Settings, dsn: str, hops: LoopbackPeer
) -> None:
    hops.redirect("/v.mp4", "/cdn/v.mp4")
    hops.serve("/cdn/v.mp4", MP4_HEAD, "video/mp4")
    settings = fast.model_copy(update={"video_origins": [url_origin(hops.url)]})
    job = await video_job(store, settings, dsn, f"{hops.url}/v.mp4")
    assert job.status is JobStatus.COMPLETED, job.error
    assert hops.paths == ["/v.mp4", "/cdn/v.mp4"]
