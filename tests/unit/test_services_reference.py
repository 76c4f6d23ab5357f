"""The reference services: contracts, range requests, fault injection, the CLI command."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner
from support.services import reference_server

from vq_plugins.reference import reference_services
from vq_plugins.reference.faults import FaultError, parse_fault_spec
from vq_plugins.reference.reference_services import ReferenceServer

RENDER = {
    "job_id": "j-1",
    "job_type": "doubt",
    "input": "Why?",
    "style": "detailed",
    "length": 3,
    "voice": "default",
}


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[ReferenceServer]:
    with reference_server(tmp_path / "media") as server:
        yield server


async def test_media_supports_range_requests(reference: ReferenceServer) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        video = (await client.post(f"{reference.url}/render", json=RENDER)).json()["video_url"]
        full = await client.get(video)
        part = await client.get(video, headers={"Range": "bytes=4-11"})
        head = await client.head(video)
        missing = await client.get(f"{reference.url}/media/..%2Fescape.mp4")
    assert full.status_code == 200 and full.headers["content-type"] == "video/mp4"
    assert part.status_code == 206
    assert part.content == full.content[4:12] == b"ftypisom"
    assert part.headers["content-range"] == f"bytes 4-11/{len(full.content)}"
    assert head.headers["accept-ranges"] == "bytes"
    assert missing.status_code == 404


async def test_global_faults_apply_to_the_next_requests_only(reference: ReferenceServer) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        set_faults = await client.post(f"{reference.url}/_faults", json={"status": 503, "times": 2})
        assert set_faults.json()["times"] == 2
        statuses = [
            (await client.post(f"{reference.url}/render", json=RENDER)).status_code
            for _ in range(3)
        ]
        log = (await client.get(f"{reference.url}/_requests")).json()
    assert statuses == [503, 503, 200]
    assert [entry["status"] for entry in log] == [503, 503, 200]


async def test_error_rate_and_request_fault_override(reference: ReferenceServer) -> None:
    reference.set_faults(error_rate=1.0)
    async with httpx.AsyncClient(timeout=30) as client:
        failed = await client.post(
            f"{reference.url}/manim/render", json={"scene_type": "diagram", "content": "x"}
        )
        # A request's own X-Fault replaces the global faults for that request.
        fine = await client.post(
            f"{reference.url}/manim/render",
            headers={"X-Fault": "latency_s=0"},
            json={"scene_type": "diagram", "content": "x"},
        )
        reference.clear_faults()
        health = await client.get(f"{reference.url}/manim/health")
    assert failed.status_code == 500
    assert fine.status_code == 200 and fine.json()["video_url"].endswith(".mp4")
    assert health.status_code == 200


async def test_invalid_bodies_and_fault_specs_answer_400(reference: ReferenceServer) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        not_json = await client.post(f"{reference.url}/render", content=b"{oops")
        manim = await client.post(f"{reference.url}/manim/render", json={"scene_type": "3d"})
        compose = await client.post(
            f"{reference.url}/revideo/compose", json={"segments": [{"type": "manim"}]}
        )
        bad_fault = await client.post(f"{reference.url}/render?fault=status%3D200", json=RENDER)
        bad_global = await client.post(f"{reference.url}/_faults", json={"latency": 1})
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]
    assert manim.status_code == 400 and "scene_type" in manim.json()["error"]
    assert compose.status_code == 400 and "segments.0.url" in compose.json()["error"]
    assert bad_fault.status_code == 400 and "status" in bad_fault.json()["error"]
    assert bad_global.status_code == 400 and "latency" in bad_global.json()["error"]


def test_fault_spec_parsing() -> None:
    faults = parse_fault_spec("status=429; retry_after=Wed, 21 Oct 2015 07:28:00 GMT; malformed")
    assert faults.error_status == 429
    assert faults.retry_after == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert faults.malformed is True
    assert parse_fault_spec("retry_after=3").error_status == 429
    assert parse_fault_spec("").is_noop()
    with pytest.raises(FaultError, match="error_rate"):
        parse_fault_spec("error_rate=2")


def test_services_command_is_added_through_the_hook() -> None:
    group = click.Group("vq")
    reference_services.vq_add_commands(cli=group)
    result = CliRunner().invoke(group, ["services", "serve", "--help"])
    assert result.exit_code == 0
    assert "/revideo/compose" in result.output
    assert "--manim / --no-manim" in result.output and "--manim-time-limit" in result.output
    bad = CliRunner().invoke(group, ["services", "serve", "--width", "161", "--media-dir", "x"])
    assert bad.exit_code == 2 and "even" in bad.output
    no_limit = CliRunner().invoke(
        group, ["services", "serve", "--manim-time-limit", "0", "--media-dir", "x"]
    )
    assert no_limit.exit_code == 2 and "--manim-time-limit" in no_limit.output


async def test_manim_scene_type_defaults_to_auto_and_names_the_kinds(
    reference: ReferenceServer,
) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        # missing_url answers right after validation: the body was accepted, nothing rendered.
        accepted = [
            await client.post(
                f"{reference.url}/manim/render",
                headers={"X-Fault": "missing_url"},
                json=body,
            )
            for body in (
                {"content": "x"},
                *({"scene_type": kind, "content": "x"} for kind in ("diagram", "plot", "steps")),
            )
        ]
        wrong = await client.post(
            f"{reference.url}/manim/render", json={"scene_type": "3d", "content": "x"}
        )
    assert [r.status_code for r in accepted] == [200] * 4
    assert wrong.status_code == 400
    assert all(k in wrong.json()["error"] for k in ("auto", "diagram", "plot", "steps"))


async def test_compose_fetches_a_clip_only_from_an_allowed_origin(tmp_path: Path) -> None:
    """Revideo on one server, Manim on another: the clip is fetched over HTTP when its
    origin is allowed, refused (400 naming the segment) when it is not."""
    from dataclasses import replace

    from support.services import TINY

    from vq_plugins.reference.reference_services import start_reference_server
    from vq_plugins.services.render_engine import probe

    with start_reference_server(tmp_path / "manim", options=TINY) as manim:
        async with httpx.AsyncClient(timeout=60) as client:
            clip = (await client.post(f"{manim.url}/manim/render",
                                      json={"content": "Rayleigh scattering"})).json()
            body = {"segments": [{"type": "intro", "duration": 1},
                                 {"type": "manim", "url": clip["video_url"]},
                                 {"type": "outro", "duration": 1}]}
            with start_reference_server(tmp_path / "closed", options=TINY) as closed:
                refused = await client.post(f"{closed.url}/revideo/compose", json=body)
            allowed = replace(TINY, clip_origins=(manim.url,))
            with start_reference_server(tmp_path / "open", options=allowed) as open_:
                composed = await client.post(f"{open_.url}/revideo/compose", json=body)
                video = await client.get(composed.json()["video_url"])
    assert refused.status_code == 400
    assert "segments.1.url" in refused.json()["error"] and "not allowed" in refused.json()["error"]
    assert composed.status_code == 200, composed.text
    (tmp_path / "composed.mp4").write_bytes(video.content)
    _, duration = probe(tmp_path / "composed.mp4")
    # intro 1 + the fetched 2 s clip + outro 1
    assert duration == pytest.approx(1 + clip["duration"] + 1, abs=0.2)


async def test_compose_refuses_a_missing_media_file_of_its_own(
    reference: ReferenceServer,
) -> None:
    body = {"segments": [{"type": "manim", "url": f"{reference.url}/media/nothing.mp4"}]}
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(f"{reference.url}/revideo/compose", json=body)
    assert answer.status_code == 400
    assert "segments.0.url" in answer.json()["error"]
