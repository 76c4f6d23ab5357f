"""Video verification: a URL must answer 200/206 and serve a video, over real HTTP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from support.services import reference_server

from vq_core.errors import ServiceError
from vq_core.models import ErrorCategory
from vq_core.worker.verification import looks_like_video, verify_video
from vq_plugins.reference.reference_services import ReferenceServer
from vq_plugins.services.render_engine import render_clip


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[ReferenceServer]:
    with reference_server(tmp_path / "media") as server:
        render_clip(server.media_dir, "clip", "A dot on a curve", length=1, width=96, height=64,
                    fps=4)
        yield server


async def verify_error(url: str, **kwargs: float) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        await verify_video(url, **kwargs)
    assert info.value.service == "verify"
    assert info.value.call == "GET video_url"
    assert info.value.category.retryable
    return info.value


async def test_served_mp4_passes_with_a_range_request(reference: ReferenceServer) -> None:
    url = f"{reference.url}/media/clip.mp4"
    await verify_video(url)
    async with httpx.AsyncClient() as client:
        response = await client.get(url, headers={"Range": "bytes=0-1023"})
    assert response.status_code == 206  # the server honours ranges, so verify fetched 1 KiB
    assert len(response.content) == 1024
    async with httpx.AsyncClient() as client:
        await verify_video(url, client=client)


async def test_missing_file_is_bad_response(reference: ReferenceServer) -> None:
    error = await verify_error(f"{reference.url}/media/nothing.mp4")
    assert error.category is ErrorCategory.BAD_RESPONSE
    assert error.status_code == 404
    assert error.body_excerpt is not None and "no such media file" in error.body_excerpt


async def test_html_page_is_bad_response(reference: ReferenceServer) -> None:
    error = await verify_error(f"{reference.url}/_not_video/x.mp4")
    assert error.category is ErrorCategory.BAD_RESPONSE
    assert error.status_code == 200
    assert "does not serve a video" in error.message


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x.mp4", "/media/x.mp4", "", "http://"])
async def test_non_http_url_is_bad_response(url: str) -> None:
    error = await verify_error(url)
    assert error.category is ErrorCategory.BAD_RESPONSE


async def test_refused_connection_is_network() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = await verify_error(f"http://127.0.0.1:{port}/v.mp4")
    assert error.category is ErrorCategory.NETWORK


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/v.mp4"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_silent_server_is_timeout(silent_server: str) -> None:
    error = await verify_error(silent_server, timeout=0.3)
    assert error.category is ErrorCategory.TIMEOUT


def test_signature_or_content_type() -> None:
    mp4_head = b"\x00\x00\x00\x20ftypisom" + bytes(20)
    assert looks_like_video("application/octet-stream", mp4_head)
    assert looks_like_video("video/webm; codecs=vp9", b"")
    assert not looks_like_video("text/html; charset=utf-8", b"<!doctype html>")
    assert not looks_like_video(None, b"")
