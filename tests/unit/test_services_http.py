"""Error mapping of the HTTP service clients, over real loopback HTTP with injected faults."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from support.services import ProgressLog, claimed, faulty_client, reference_server

from vq_core.config import ConfigError, Settings
from vq_core.errors import ServiceError
from vq_core.models import ClaimedJob, ErrorCategory
from vq_plugins.reference.reference_services import ReferenceServer
from vq_plugins.services import orchestrator
from vq_plugins.services.http_service import parse_retry_after, validate_payload
from vq_plugins.services.orchestrator import OrchestratorService

QUESTION = {"question": "Why is the sky blue?", "length": 5}


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[ReferenceServer]:
    with reference_server(tmp_path / "media") as server:
        yield server


async def render_with_fault(
    reference: ReferenceServer, fault: str, read_timeout: float = 30.0
) -> ServiceError:
    service = OrchestratorService(reference.url, client=faulty_client(fault, read_timeout))
    try:
        with pytest.raises(ServiceError) as info:
            await service.render(claimed(QUESTION), ProgressLog())
    finally:
        await service.aclose()
    return info.value


async def test_success_returns_video_fields_and_sends_idempotency_key(
    reference: ReferenceServer,
) -> None:
    service = OrchestratorService(reference.url, job_types=("doubt",))
    job = claimed({**QUESTION, "style": "brief", "voice": "female"})
    progress = ProgressLog()
    try:
        result = await service.render(job, progress)
    finally:
        await service.aclose()
    assert result["video_url"].startswith(f"{reference.url}/media/")
    assert result["thumbnail_url"].endswith(".jpg")
    assert result["duration"] == pytest.approx(5.0)
    assert progress.stages == ["requesting", "verifying"]
    [seen] = reference.requests("/render")
    assert seen["idempotency_key"] == str(job.id)


async def test_retried_render_is_deduplicated_by_idempotency_key(
    reference: ReferenceServer,
) -> None:
    service = OrchestratorService(reference.url)
    job = claimed(QUESTION)
    try:
        first = await service.render(job, ProgressLog())
        again = await service.render(job, ProgressLog())
    finally:
        await service.aclose()
    assert again["video_url"] == first["video_url"]
    assert len(list(reference.media_dir.glob("*.mp4"))) == 1


@pytest.mark.parametrize(
    ("fault", "category", "status"),
    [
        ("status=500", ErrorCategory.API_ERROR, 500),
        ("status=503", ErrorCategory.API_ERROR, 503),
        ("status=404", ErrorCategory.INVALID_INPUT, 404),
        ("status=422", ErrorCategory.INVALID_INPUT, 422),
        ("malformed", ErrorCategory.BAD_RESPONSE, 200),
        ("missing_url", ErrorCategory.BAD_RESPONSE, 200),
    ],
)
async def test_answers_map_to_categories(
    reference: ReferenceServer, fault: str, category: ErrorCategory, status: int
) -> None:
    error = await render_with_fault(reference, fault)
    assert error.category is category
    assert error.status_code == status
    assert error.service == "orchestrator"
    assert error.call == "POST /render"
    assert error.body_excerpt  # what the server said, for the operator


async def test_error_body_excerpt_is_bounded(reference: ReferenceServer) -> None:
    error = await render_with_fault(reference, "status=500")
    assert error.body_excerpt is not None
    assert "injected fault" in error.body_excerpt
    assert "injected fault" in error.message  # the server's {error} reaches the message
    assert len(error.body_excerpt) <= 500


async def test_rate_limit_carries_retry_after_seconds(reference: ReferenceServer) -> None:
    error = await render_with_fault(reference, "status=429;retry_after=7")
    assert error.category is ErrorCategory.RATE_LIMITED
    assert error.status_code == 429
    assert error.retry_after == 7.0


async def test_rate_limit_carries_retry_after_http_date(reference: ReferenceServer) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    error = await render_with_fault(reference, f"retry_after={when}")
    assert error.category is ErrorCategory.RATE_LIMITED
    assert error.retry_after is not None
    assert 80 <= error.retry_after <= 91


async def test_dropped_connection_is_network(reference: ReferenceServer) -> None:
    error = await render_with_fault(reference, "drop_connection")
    assert error.category is ErrorCategory.NETWORK
    assert error.status_code is None
    # The peer closes mid-body: httpx reports a protocol or a read error, by timing.
    assert "RemoteProtocolError" in error.message or "ReadError" in error.message


async def test_slow_answer_is_timeout(reference: ReferenceServer) -> None:
    error = await render_with_fault(reference, "latency_s=3", read_timeout=0.3)
    assert error.category is ErrorCategory.TIMEOUT
    assert "ReadTimeout" in error.message


async def test_refused_connection_is_network() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the request: nobody listens
    service = OrchestratorService(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(ServiceError) as info:
            await service.render(claimed(QUESTION), ProgressLog())
    finally:
        await service.aclose()
    assert info.value.category is ErrorCategory.NETWORK
    assert "ConnectError" in info.value.message


class UncheckedLength(OrchestratorService):
    """A client whose body asks for more than the service allows, as a client with a
    looser check than the service's own would (the real client, the real request)."""

    def request_body(self, job: ClaimedJob) -> dict[str, Any]:
        return {**super().request_body(job), "length": 9999}


async def test_server_side_validation_is_invalid_input(reference: ReferenceServer) -> None:
    # The service refuses the body with a 400: the job's input is bad, not the service.
    service = UncheckedLength(reference.url)
    try:
        with pytest.raises(ServiceError) as info:
            await service.render(claimed(QUESTION), ProgressLog())
    finally:
        await service.aclose()
    error = info.value
    assert error.category is ErrorCategory.INVALID_INPUT
    assert not error.category.retryable
    assert error.status_code == 400
    assert error.service == "orchestrator" and error.call == "POST /render"
    assert "length" in error.message  # the service's own words reach the operator
    [seen] = reference.requests("/render")
    assert seen["status"] == 400  # refused by the service, not by our own check


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "question or topic is required"),
        ({"question": "   "}, "question or topic is required"),
        ({"question": "q", "length": 1}, "payload.length"),
        ({"question": "q", "length": 601}, "payload.length"),
        ({"question": "q", "length": True}, "payload.length"),
        ({"topic": "t", "style": ""}, "payload.style"),
        ({"question": 42}, "payload.question"),
    ],
)
async def test_bad_payload_is_invalid_input_before_any_request(
    reference: ReferenceServer, payload: dict[str, object], field: str
) -> None:
    service = OrchestratorService(reference.url)
    try:
        with pytest.raises(ServiceError) as info:
            await service.render(claimed(payload), ProgressLog())
    finally:
        await service.aclose()
    assert info.value.category is ErrorCategory.INVALID_INPUT
    assert field in info.value.message
    assert info.value.call == "validate payload"
    assert reference.requests() == []


def test_payload_defaults_follow_the_contract() -> None:
    payload = validate_payload({"topic": "  Photosynthesis \n basics "}, service="t")
    assert (payload.input, payload.style, payload.length, payload.voice) == (
        "Photosynthesis basics",
        "detailed",
        60.0,
        "default",
    )
    assert validate_payload({"question": "q", "topic": "t"}, service="t").input == "q"


def test_retry_after_parsing() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("5", now) == 5.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-3", now) == 0.0
    assert parse_retry_after(None, now) is None


async def test_health_follows_the_service(reference: ReferenceServer) -> None:
    service = OrchestratorService(reference.url)
    try:
        assert await service.health() is True
        reference.set_faults(unhealthy=True)
        assert await service.health() is False
    finally:
        await service.aclose()


def test_registered_only_with_a_base_url(tmp_path: Path) -> None:
    assert orchestrator.vq_register_services(Settings(data_dir=tmp_path)) == []
    configured = Settings(
        data_dir=tmp_path,
        plugin_config={
            "orchestrator": {
                "base_url": "http://127.0.0.1:9/",
                "job_types": "doubt, lesson",
                "read_timeout": "42",
            }
        },
    )
    [service] = orchestrator.vq_register_services(configured)
    assert isinstance(service, OrchestratorService)
    assert service.base_url == "http://127.0.0.1:9"
    assert tuple(service.job_types) == ("doubt", "lesson")
    with pytest.raises(ConfigError, match=r"plugin_config\.orchestrator\.base_url"):
        orchestrator.from_settings(
            Settings(data_dir=tmp_path, plugin_config={"orchestrator": {"base_url": "ftp://x"}})
        )
    with pytest.raises(ConfigError, match="read_timeout"):
        orchestrator.from_settings(
            Settings(
                data_dir=tmp_path,
                plugin_config={
                    "orchestrator": {"base_url": "http://127.0.0.1:9", "read_timeout": "-1"}
                },
            )
        )


def test_video_result_keeps_what_made_the_video_when_well_typed() -> None:
    data = {
        "video_url": "http://127.0.0.1:9/media/a.mp4",
        "captions_url": "http://127.0.0.1:9/media/a.vtt",
        "renderer": "  manim ",
        "reference": True,
        "narrated": False,
        "fallback": "x" * 500,
    }
    result = orchestrator.video_result(data, "orchestrator")
    assert result["captions_url"] == data["captions_url"]
    assert result["renderer"] == "manim"
    assert result["reference"] is True and result["narrated"] is False
    assert len(result["fallback"]) == orchestrator.MAX_NOTE_CHARS
    # Wrong types are dropped, never copied into the job's result.
    odd = orchestrator.video_result(
        {"video_url": data["video_url"], "captions_url": "javascript:x", "reference": "yes",
         "renderer": 3},
        "orchestrator",
    )
    assert set(odd) == {"video_url", "service"}
