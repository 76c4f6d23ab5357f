"""Recorded contract tests of the video-service clients.

Replay (the default, no network): every request must match a recorded one on method,
path and body; an unmatched request fails the test. Re-record with ``--record`` or
``VQ_RECORD=1``, against ``VQ_CONTRACT_BASE_URL`` (orchestrator at the base, Manim at
``{base}/manim``, Revideo at ``{base}/revideo``; ``VQ_CONTRACT_ORCHESTRATOR_URL``,
``VQ_CONTRACT_MANIM_URL`` and ``VQ_CONTRACT_REVIDEO_URL`` override one each), or, with
no base URL, against a reference server the session starts. Authorization and
X-Api-Key headers are scrubbed from what is recorded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import vcr
import yaml
from contract_support import CASSETTES, ENDPOINTS, ROOT, SCRUBBED, SERVICES

VOLATILE_RESPONSE_HEADERS = ("date", "server")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record", action="store_true", default=False,
        help="re-record the cassettes against VQ_CONTRACT_BASE_URL or a reference server",
    )


@pytest.fixture(scope="session")
def recording(pytestconfig: pytest.Config) -> bool:
    """Whether this run records (``--record`` or ``VQ_RECORD=1``) instead of replaying."""
    return bool(pytestconfig.getoption("--record")) or os.environ.get("VQ_RECORD") == "1"


def _strip_volatile(response: dict[str, Any]) -> dict[str, Any]:
    # Dates and server banners change on every recording and say nothing about the contract.
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in VOLATILE_RESPONSE_HEADERS:
            del headers[name]
    return response


@pytest.fixture(scope="session")
def cassette_vcr(recording: bool) -> vcr.VCR:
    """A VCR that replays only (record mode ``none``) unless recording."""
    return vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode="all" if recording else "none",
        match_on=["method", "path", "body"],
        filter_headers=SCRUBBED,
        before_record_response=_strip_volatile,
        decode_compressed_response=True,
    )


def _configured_bases() -> dict[str, str] | None:
    base = os.environ.get("VQ_CONTRACT_BASE_URL", "").rstrip("/")
    bases = {"orchestrator": base, "manim": f"{base}/manim", "revideo": f"{base}/revideo"}
    for service in SERVICES:
        override = os.environ.get(f"VQ_CONTRACT_{service.upper()}_URL")
        if override:
            bases[service] = override.rstrip("/")
    return bases if all(bases.values()) else None


@pytest.fixture(scope="session")
def live_bases(recording: bool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    dict[str, str] | None
]:
    """Where recordings go: the configured URLs, or a reference server of this session."""
    if not recording:
        yield None
        return
    configured = _configured_bases()
    if configured is not None:
        yield configured
        return
    from vq_plugins.reference.app import RenderOptions
    from vq_plugins.reference.reference_services import start_reference_server

    options = RenderOptions(width=160, height=96, fps=8, clip_seconds=2.0)
    media = tmp_path_factory.mktemp("contract-media")
    with start_reference_server(media, options=options) as srv:
        yield {"orchestrator": srv.url, "manim": f"{srv.url}/manim",
               "revideo": f"{srv.url}/revideo"}


def recorded_base(service: str, scenario: str) -> str:
    """The base URL a cassette was recorded against, so replay requests the same path."""
    path = CASSETTES / service / f"{scenario}.yaml"
    if not path.is_file():
        pytest.fail(f"no cassette {path.relative_to(ROOT)}; record it with --record")
    data = yaml.safe_load(path.read_text())
    uri: str = data["interactions"][0]["request"]["uri"]
    return uri.split("?", 1)[0].removesuffix(ENDPOINTS[service])


@pytest.fixture
def base_url(live_bases: dict[str, str] | None) -> Any:
    """``base_url(service, scenario)``: live when recording, as recorded when replaying."""

    def pick(service: str, scenario: str) -> str:
        if live_bases is not None:
            return live_bases[service]
        return recorded_base(service, scenario)

    return pick
