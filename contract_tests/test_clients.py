"""The service clients against recorded answers: one cassette per service and scenario.

Error scenarios ask the peer for the failure with an ``X-Fault`` header, which only
the reference services honour: record those against ``vq services serve``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from contract_support import CASSETTES, SERVICES

from vq_core.errors import ServiceError
from vq_core.models import ClaimedJob, ErrorCategory, Priority
from vq_plugins.services.http_service import is_http_url, validate_payload
from vq_plugins.services.manim_revideo import ManimClient, RevideoClient, compose_body
from vq_plugins.services.orchestrator import OrchestratorService

JOB_ID = uuid.UUID("00000000-0000-4000-8000-0000000000c7")
API_KEY = "contract-test-key-not-secret"
# scenario -> (X-Fault header, expected category, expected status); None means success
SCENARIOS: dict[str, tuple[str | None, ErrorCategory | None, int | None]] = {
    "success": (None, None, None),
    "invalid_input": (None, ErrorCategory.INVALID_INPUT, 400),
    "server_error": ("status=500", ErrorCategory.API_ERROR, 500),
    "rate_limit": ("status=429;retry_after=30", ErrorCategory.RATE_LIMITED, 429),
    "malformed_body": ("malformed", ErrorCategory.BAD_RESPONSE, 200),
    "missing_url": ("missing_url", ErrorCategory.BAD_RESPONSE, 200),
}


def _job(payload: dict[str, Any]) -> ClaimedJob:
    return ClaimedJob(JOB_ID, "doubt", Priority.NORMAL, payload, 0, 3, datetime.now(UTC))


async def call_orchestrator(base: str, client: httpx.AsyncClient, invalid: bool) -> dict[str, Any]:
    # Our own check passes this; the service's limit on input (5,000 characters) does not.
    question = "why " * 1300 if invalid else "Why is the sky blue?"
    service = OrchestratorService(base, client=client)
    return await service.render(_job({"question": question, "length": 5}), _no_progress)


async def call_manim(base: str, client: httpx.AsyncClient, invalid: bool) -> dict[str, Any]:
    url = await ManimClient(base, client).render(" " if invalid else "Plot y = x^2", "detailed",
                                                 key=f"{JOB_ID}:manim")
    return {"video_url": url}


async def call_revideo(base: str, client: httpx.AsyncClient, invalid: bool) -> dict[str, Any]:
    payload = {"question": "What is a noun?", "voice": "female", "speed": 1.25,
               "explanation": "A noun names a person, a place or a thing."}
    body = compose_body(validate_payload(payload, service="t"), None)
    if invalid:
        body = {**body, "segments": []}
    return await RevideoClient(base, client).compose(body, key=f"{JOB_ID}:compose")


async def _no_progress(percent: float, stage: str) -> None:
    return None


CALLS: dict[str, Callable[[str, httpx.AsyncClient, bool], Any]] = {
    "orchestrator": call_orchestrator, "manim": call_manim, "revideo": call_revideo,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("service", SERVICES)
async def test_client_contract(
    service: str, scenario: str, cassette_vcr: Any, base_url: Any, recording: bool
) -> None:
    fault, category, status = SCENARIOS[scenario]
    headers = {"X-Api-Key": API_KEY, **({"X-Fault": fault} if fault else {})}
    base = base_url(service, scenario)
    if recording:
        # vcrpy's record mode "all" appends to a cassette; a re-recording replaces it.
        (CASSETTES / service / f"{scenario}.yaml").unlink(missing_ok=True)
    with cassette_vcr.use_cassette(f"{service}/{scenario}.yaml"):
        async with httpx.AsyncClient(headers=headers, timeout=60) as client:
            if category is None:
                result = await CALLS[service](base, client, False)
                assert is_http_url(result["video_url"])
                if service == "orchestrator":
                    assert isinstance(result["thumbnail_url"], str)
                    assert isinstance(result["duration"], float)
                if service in ("orchestrator", "revideo"):
                    # Narrated videos come with their captions (docs/services.md).
                    assert is_http_url(result["captions_url"])
                return
            with pytest.raises(ServiceError) as info:
                await CALLS[service](base, client, scenario == "invalid_input")
    error = info.value
    assert (error.category, error.status_code) == (category, status)
    assert error.body_excerpt
    assert error.service == ("orchestrator" if service == "orchestrator" else service)
    if scenario == "rate_limit":
        assert error.retry_after == 30.0


def test_cassettes_hold_no_credentials() -> None:
    files = sorted(CASSETTES.rglob("*.yaml"))
    assert len(files) == len(SERVICES) * len(SCENARIOS)
    for path in files:
        assert API_KEY not in path.read_text(), f"{path.name} kept the X-Api-Key value"
