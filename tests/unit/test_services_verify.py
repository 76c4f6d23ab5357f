"""Video verification: a URL must answer 200/206 and serve a video, over real HTTP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.services import LoopbackPeer, loopback_peer, reference_server

from vq_core.config import ConfigError, Settings
from vq_core.errors import ServiceError
from vq_core.models import ErrorCategory
from vq_core.video_service import url_origin
from vq_core.worker.verification import allowed_origins, looks_like_video, verify_video
from vq_plugins.reference.reference_services import ReferenceServer
from vq_plugins.services.noop import NoopService
from vq_plugins.services.orchestrator import OrchestratorService
from vq_plugins.services.render_engine import render_clip

SECRET = b"root:x:0:0 internal-only secret"
MP4_HEAD = b"\x00\x00\x00\x20ftypisom" + bytes(20)


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[ReferenceServer]:
    with reference_server(tmp_path / "media") as server:
        render_clip(
            server.media_dir, "clip", "A dot on a curve", length=1, width=96, height=64, fps=4
        )
        yield server


@pytest.fixture
async def internal() -> AsyncIterator[LoopbackPeer]:
    """A loopback server the video check must never reach: it stands for what only the
    worker's host can see (a metadata service, an admin port)."""
    async with loopback_peer() as peer:
        peer.serve("/secret", SECRET, "text/plain")
        peer.serve("/video.mp4", MP4_HEAD, "video/mp4")
        yield peer


@pytest.fixture
async def hops() -> AsyncIterator[LoopbackPeer]:
    """An allowed loopback server that redirects as each test sets it up."""
    async with loopback_peer() as peer:
        yield peer


def origins(*urls: str) -> frozenset[str]:
    return frozenset(url_origin(url) for url in urls)


async def verify_error(
    url: str, allowed: frozenset[str] | None = None, **kwargs: Any
) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        await verify_video(url, origins=allowed or origins(url), **kwargs)
    assert info.value.service == "verify"
    assert info.value.call == "GET video_url"
    assert info.value.category.retryable
    # Whatever the URL served stays out of the job's error, which every viewer reads.
    assert info.value.body_excerpt is None
    assert "body_excerpt" not in info.value.details()
    return info.value


def assert_refused(error: ServiceError, origin: str) -> None:
    assert error.category is ErrorCategory.BAD_RESPONSE
    assert error.permanent  # the runner fails the job at once instead of retrying
    assert f"points to {origin}, which is not an allowed video origin" in error.message
    assert error.status_code is None


async def test_served_mp4_passes_with_a_range_request(reference: ReferenceServer) -> None:
    url = f"{reference.url}/media/clip.mp4"
    await verify_video(url, origins=origins(url))
    async with httpx.AsyncClient() as client:
        response = await client.get(url, headers={"Range": "bytes=0-1023"})
    assert response.status_code == 206  # the server honours ranges, so verify fetched 1 KiB
    assert len(response.content) == 1024
    async with httpx.AsyncClient() as client:
        await verify_video(url, client=client, origins=origins(url))


async def test_missing_file_is_bad_response_without_its_body(reference: ReferenceServer) -> None:
    error = await verify_error(f"{reference.url}/media/nothing.mp4")
    assert error.category is ErrorCategory.BAD_RESPONSE
    assert error.status_code == 404
    assert "no such media file" not in error.message


async def test_status_and_content_type_but_never_the_body(hops: LoopbackPeer) -> None:
    hops.serve("/page", SECRET, "text/plain; charset=utf-8")
    error = await verify_error(f"{hops.url}/page")
    assert error.status_code == 200
    assert "content type text/plain; charset=utf-8" in error.message
    assert "secret" not in error.message
    hops.serve("/gone", SECRET, "text/plain", status=410)
    error = await verify_error(f"{hops.url}/gone")
    assert error.status_code == 410 and "secret" not in error.message


async def test_internal_url_is_refused_without_a_request(
    reference: ReferenceServer, internal: LoopbackPeer
) -> None:
    allowed = origins(reference.url)
    for path in ("/secret", "/video.mp4"):
        error = await verify_error(f"{internal.url}{path}", allowed)
        assert_refused(error, url_origin(internal.url))
    assert internal.paths == []


async def test_same_host_on_another_port_is_another_origin(
    hops: LoopbackPeer, internal: LoopbackPeer
) -> None:
    # Both are 127.0.0.1: the port is part of the origin.
    error = await verify_error(f"{internal.url}/video.mp4", origins(hops.url))
    assert_refused(error, url_origin(internal.url))
    assert internal.paths == []


async def test_redirect_to_an_internal_origin_is_refused(
    hops: LoopbackPeer, internal: LoopbackPeer
) -> None:
    hops.redirect("/v.mp4", f"{internal.url}/secret")
    error = await verify_error(f"{hops.url}/v.mp4", origins(hops.url))
    assert_refused(error, url_origin(internal.url))
    assert "redirect 1" in error.message
    assert hops.paths == ["/v.mp4"]
    assert internal.paths == []


async def test_redirect_to_another_scheme_is_refused(hops: LoopbackPeer) -> None:
    hops.redirect("/v.mp4", "file:///etc/passwd")
    error = await verify_error(f"{hops.url}/v.mp4", origins(hops.url))
    assert error.permanent and "not an absolute http(s) URL" in error.message


async def test_redirects_within_the_allowed_origins_pass(
    hops: LoopbackPeer, reference: ReferenceServer
) -> None:
    # A relative hop, then a 307 to another allowed origin that serves the file.
    hops.redirect("/start", "/next", status=301)
    hops.redirect("/next", f"{reference.url}/media/clip.mp4", status=307)
    await verify_video(f"{hops.url}/start", origins=origins(hops.url, reference.url))
    assert hops.paths == ["/start", "/next"]


async def test_a_client_that_follows_redirects_is_still_checked_hop_by_hop(
    hops: LoopbackPeer, internal: LoopbackPeer
) -> None:
    hops.redirect("/v.mp4", f"{internal.url}/video.mp4")
    async with httpx.AsyncClient(follow_redirects=True) as client:
        with pytest.raises(ServiceError) as info:
            await verify_video(f"{hops.url}/v.mp4", client, origins=origins(hops.url))
    assert_refused(info.value, url_origin(internal.url))
    assert internal.paths == []


async def test_redirects_are_capped(hops: LoopbackPeer) -> None:
    for n in range(4):
        hops.redirect(f"/hop/{n}", f"/hop/{n + 1}")
    hops.serve("/hop/4", MP4_HEAD, "video/mp4")
    allowed = origins(hops.url)
    await verify_video(f"{hops.url}/hop/0", origins=allowed, max_redirects=4)
    hops.paths.clear()
    error = await verify_error(f"{hops.url}/hop/0", allowed, max_redirects=3)
    assert error.category is ErrorCategory.BAD_RESPONSE
    assert "redirects more than 3 times" in error.message
    assert hops.paths == ["/hop/0", "/hop/1", "/hop/2", "/hop/3"]  # hop 4 was never asked


def test_allowed_origins_default_to_the_services_and_the_public_url(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, public_url="https://127.0.0.1/")
    services = [OrchestratorService("http://127.0.0.1:9000/api"), NoopService()]
    assert allowed_origins(settings, services) == {
        "http://127.0.0.1:9000",
        "https://127.0.0.1:443",
    }
    own = Settings(data_dir=tmp_path, port=8123)
    assert allowed_origins(own, []) == {"http://127.0.0.1:8123"}


def test_the_setting_replaces_the_default(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, video_origins=["HTTPS://127.0.0.1"])
    assert settings.video_origins == ["https://127.0.0.1:443"]
    services = [OrchestratorService("http://127.0.0.1:9000")]
    assert allowed_origins(settings, services) == {"https://127.0.0.1:443"}


class BadOrigins(NoopService):
    def video_origins(self) -> list[str]:
        return ["not a url"]


def test_a_service_declaring_a_bad_origin_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="service noop: video_origins"):
        allowed_origins(Settings(data_dir=tmp_path), [BadOrigins()])


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("http://127.0.0.1:8080/media", "give only scheme, host and port"),
        ("http://user:pw@127.0.0.1:8080", "give only scheme, host and port"),
        ("ftp://127.0.0.1", "is not an origin"),
        ("127.0.0.1:8080", "is not an origin"),
    ],
)
def test_video_origins_setting_takes_origins_only(tmp_path: Path, entry: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        Settings(data_dir=tmp_path, video_origins=[entry])


async def test_html_page_is_bad_response(reference: ReferenceServer) -> None:
    error = await verify_error(f"{reference.url}/_not_video/x.mp4")
    assert error.category is ErrorCategory.BAD_RESPONSE
    assert error.status_code == 200
    assert "does not serve a video" in error.message


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x.mp4", "/media/x.mp4", "", "http://"])
async def test_non_http_url_is_bad_response(url: str) -> None:
    error = await verify_error(url, frozenset({"http://127.0.0.1:80"}))
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


async def test_credentials_in_a_video_url_stay_out_of_the_error(hops: LoopbackPeer) -> None:
    """The error is shown to every viewer: a URL's user and password are not."""
    hops.serve("/gone", SECRET, "text/plain", status=404)
    with_credentials = hops.url.replace("http://", "http://ann:pa55word@") + "/gone"
    error = await verify_error(with_credentials, origins(hops.url))
    assert error.status_code == 404
    assert "pa55word" not in error.message and "ann:" not in error.message
    assert "***@" in error.message
