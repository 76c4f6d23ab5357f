"""The Manim + Revideo pipeline against the reference services over loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.services import ProgressLog, claimed, download, faulty_client, reference_server

from vq_core.config import ConfigError, Settings
from vq_core.errors import ServiceError
from vq_core.models import ErrorCategory
from vq_core.video_service import declared_video_origins
from vq_core.worker.verification import verify_video
from vq_plugins.reference.reference_services import ReferenceServer
from vq_plugins.services import manim_revideo
from vq_plugins.services.http_service import validate_payload
from vq_plugins.services.manim_revideo import ManimRevideoService, compose_body, needs_animation
from vq_plugins.services.render_engine import probe


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[ReferenceServer]:
    with reference_server(tmp_path / "media") as server:
        yield server


def service_for(
    reference: ReferenceServer, client: httpx.AsyncClient | None = None
) -> ManimRevideoService:
    return ManimRevideoService(
        f"{reference.url}/manim", f"{reference.url}/revideo", job_types=("doubt",), client=client
    )


@pytest.mark.parametrize(
    ("payload", "animated"),
    [
        ({"question": "How do I plot y = x^2?"}, True),
        ({"question": "Derive the quadratic formula"}, True),
        ({"topic": "Proof that root 2 is irrational"}, True),
        ({"question": "What is a noun?", "subject": "Physics"}, True),
        ({"question": "What is a noun?"}, False),
        ({"question": "Draw the diagram", "animate": False}, False),
        ({"question": "What is a noun?", "animate": True}, True),
    ],
)
def test_animation_rule(payload: dict[str, object], animated: bool) -> None:
    assert needs_animation(validate_payload(payload, service="t")) is animated


def test_compose_body_follows_the_contract() -> None:
    payload = validate_payload({"question": "Why?", "voice": "calm"}, service="t")
    assert compose_body(payload, "http://127.0.0.1:1/media/c.mp4") == {
        "segments": [
            {"type": "intro", "duration": 5},
            {"type": "manim", "url": "http://127.0.0.1:1/media/c.mp4"},
            {"type": "narration", "text": "Why?"},
            {"type": "outro", "duration": 3},
        ],
        "audio": {"voice": "calm", "speed": 1.0},
    }
    assert [s["type"] for s in compose_body(payload, None)["segments"]] == [
        "intro",
        "narration",
        "outro",
    ]


async def test_animated_doubt_goes_through_manim_then_revideo(
    reference: ReferenceServer, tmp_path: Path
) -> None:
    service = service_for(reference)
    progress = ProgressLog()
    job = claimed({"question": "Plot the graph of sin(x)"})
    try:
        result = await service.render(job, progress)
    finally:
        await service.aclose()
    assert result["animated"] is True
    assert progress.stages == ["animating", "composing", "verifying"]
    assert [e["path"] for e in reference.requests()] == ["/manim/render", "/revideo/compose"]
    assert reference.requests()[0]["idempotency_key"] == f"{job.id}:manim"
    await verify_video(result["video_url"], origins=declared_video_origins([service]))
    codec, duration = probe(await download(result["video_url"], tmp_path / "v.mp4"))
    # intro 5 + the 2 s clip with the question said over it (shorter than 2 s) + outro 3
    assert codec == "h264"
    assert duration == pytest.approx(10.0, abs=0.2)
    assert result["duration"] == pytest.approx(duration, abs=0.2)
    # The result says what made the video: stand-in services, the clip's renderer and why.
    assert result["reference"] is True and result["narrated"] is True
    assert result["captions_url"].endswith(".vtt")
    assert (result["manim_renderer"], result["scene_type"]) == ("pyav", "plot")
    assert result["fallback"] == "Manim is turned off"


@pytest.mark.parametrize(
    ("question", "scene_type"),
    [
        ("How do I plot y = x^2?", "plot"),
        ("Why is the sky blue?", "steps"),
        ("Rayleigh scattering", "diagram"),
    ],
)
async def test_manim_is_asked_for_the_scene_the_question_wants(
    reference: ReferenceServer, question: str, scene_type: str
) -> None:
    sent: list[dict[str, object]] = []

    async def record(request: httpx.Request) -> None:
        sent.append(json.loads(request.content))

    # missing_url answers right after validation: the body is checked, nothing rendered.
    client = faulty_client("missing_url")
    client.event_hooks["request"] = [record]
    service = service_for(reference, client=client)
    try:
        with pytest.raises(ServiceError):
            await service.render(claimed({"question": question, "animate": True}), ProgressLog())
    finally:
        await service.aclose()
    assert sent == [{"scene_type": scene_type, "content": question, "style": "detailed"}]
    assert reference.requests("/manim/render")[0]["status"] == 200


async def test_plain_doubt_skips_manim(reference: ReferenceServer) -> None:
    service = service_for(reference)
    progress = ProgressLog()
    try:
        result = await service.render(claimed({"question": "What is a noun?"}), progress)
    finally:
        await service.aclose()
    assert result["animated"] is False
    assert "animating" not in progress.stages
    assert [e["path"] for e in reference.requests()] == ["/revideo/compose"]


@pytest.mark.parametrize(
    ("fault", "category", "call"),
    [
        ("status=502", ErrorCategory.API_ERROR, "POST manim /render"),
        # A render over its time limit: slow, not broken, so retried as a timeout.
        ("status=504", ErrorCategory.TIMEOUT, "POST manim /render"),
        ("status=429;retry_after=4", ErrorCategory.RATE_LIMITED, "POST manim /render"),
        ("missing_url", ErrorCategory.BAD_RESPONSE, "POST manim /render"),
        ("drop_connection", ErrorCategory.NETWORK, "POST manim /render"),
    ],
)
async def test_manim_failures_are_categorised(
    reference: ReferenceServer, fault: str, category: ErrorCategory, call: str
) -> None:
    service = service_for(reference, client=faulty_client(fault))
    try:
        with pytest.raises(ServiceError) as info:
            await service.render(claimed({"question": "Plot it", "animate": True}), ProgressLog())
    finally:
        await service.aclose()
    assert info.value.category is category
    assert (info.value.service, info.value.call) == ("manim", call)
    assert len(reference.requests("/revideo/compose")) == 0


async def test_revideo_failure_names_revideo(reference: ReferenceServer) -> None:
    service = service_for(reference)
    reference.set_faults(status=500, times=1)  # the first (only) request: compose
    try:
        with pytest.raises(ServiceError) as info:
            await service.render(claimed({"question": "What is a noun?"}), ProgressLog())
    finally:
        await service.aclose()
    assert info.value.category is ErrorCategory.API_ERROR
    assert (info.value.service, info.value.call) == ("revideo", "POST revideo /compose")


async def test_health_needs_both(reference: ReferenceServer) -> None:
    good = service_for(reference)
    half = ManimRevideoService(f"{reference.url}/manim", "http://127.0.0.1:9/revideo")
    try:
        assert await good.health() is True
        assert await half.health() is False
    finally:
        await good.aclose()
        await half.aclose()


def test_configuration(tmp_path: Path) -> None:
    assert manim_revideo.vq_register_services(Settings(data_dir=tmp_path)) == []
    with pytest.raises(ConfigError, match="revideo_base_url"):
        manim_revideo.from_settings(
            Settings(
                data_dir=tmp_path,
                plugin_config={"manim_revideo": {"manim_base_url": "http://127.0.0.1:9/manim"}},
            )
        )
    [service] = manim_revideo.vq_register_services(
        Settings(
            data_dir=tmp_path,
            plugin_config={
                "manim_revideo": {
                    "manim_base_url": "http://127.0.0.1:9/manim",
                    "revideo_base_url": "http://127.0.0.1:9/revideo/",
                    "job_types": ["doubt"],
                }
            },
        )
    )
    assert isinstance(service, ManimRevideoService)
    assert service.revideo.base_url == "http://127.0.0.1:9/revideo"
    assert tuple(service.job_types) == ("doubt",)
