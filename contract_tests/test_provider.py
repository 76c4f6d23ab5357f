"""Provider check: the reference services still answer what the cassettes recorded.

Every recorded request is sent again to a freshly started reference server; the
status, the content type, Retry-After and the shape of the body (the keys of a JSON
object and the JSON type of each value, or "not JSON") must be the same. URLs and
durations may differ; their presence and types may not. Keys the contract marks as
optional (``OPTIONAL_KEYS``) are left out of the shape: the Manim service names its
``fallback`` only when it fell back, which depends on whether Manim is installed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from contract_support import CASSETTES

from vq_plugins.reference.app import RenderOptions
from vq_plugins.reference.reference_services import ReferenceServer, start_reference_server

HOP_HEADERS = {"host", "content-length", "connection", "accept-encoding"}
CASSETTE_FILES = sorted(CASSETTES.rglob("*.yaml"))
OPTIONAL_KEYS = frozenset({"fallback"})


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceServer]:
    options = RenderOptions(width=160, height=96, fps=8, clip_seconds=2.0)
    with start_reference_server(tmp_path_factory.mktemp("provider"), options=options) as server:
        yield server


def shape(body: str) -> Any:
    """What a client relies on: "not JSON", or keys -> JSON type names, or a scalar type."""
    try:
        data = json.loads(body)
    except ValueError:
        return "not JSON"
    if isinstance(data, dict):
        return {
            key: _type_name(value) for key, value in data.items() if key not in OPTIONAL_KEYS
        }
    return _type_name(data)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", dict: "object", list: "array", type(None): "null"}[type(value)]


def _first(headers: dict[str, list[str]], name: str) -> str | None:
    for key, values in headers.items():
        if key.lower() == name and values:
            return values[0]
    return None


def _replay(provider: ReferenceServer, request: dict[str, Any]) -> httpx.Response:
    path = httpx.URL(request["uri"]).raw_path.decode()
    headers = {
        k: v[0] for k, v in request["headers"].items() if k.lower() not in HOP_HEADERS and v
    }
    body = request["body"]
    content = body.encode() if isinstance(body, str) else body
    return httpx.request(
        request["method"], f"{provider.url}{path}", content=content, headers=headers, timeout=60
    )


@pytest.mark.parametrize(
    "cassette", CASSETTE_FILES, ids=[f"{p.parent.name}/{p.stem}" for p in CASSETTE_FILES]
)
def test_provider_matches_cassette(provider: ReferenceServer, cassette: Path) -> None:
    data = yaml.safe_load(cassette.read_text())
    assert data["interactions"], f"{cassette} records nothing"
    for interaction in data["interactions"]:
        recorded = interaction["response"]
        live = _replay(provider, interaction["request"])
        where = f"{cassette.parent.name}/{cassette.name}: {interaction['request']['uri']}"
        assert live.status_code == recorded["status"]["code"], where
        recorded_type = (_first(recorded["headers"], "content-type") or "").split(";")[0]
        assert live.headers.get("content-type", "").split(";")[0] == recorded_type, where
        assert ("retry-after" in live.headers) == (
            _first(recorded["headers"], "retry-after") is not None
        ), where
        assert shape(live.text) == shape(recorded["body"]["string"]), where


def test_every_service_and_scenario_is_recorded() -> None:
    names = {(p.parent.name, p.stem) for p in CASSETTE_FILES}
    for service in ("orchestrator", "manim", "revideo"):
        for scenario in ("success", "invalid_input", "server_error", "rate_limit",
                         "malformed_body", "missing_url"):
            assert (service, scenario) in names, f"missing cassette {service}/{scenario}"
