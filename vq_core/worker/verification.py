"""Checking a rendered video before its job is marked completed.

A service that answers 200 with a URL has not necessarily made a video: the file
may not exist yet, the CDN may serve an error page, the link may point elsewhere.
The worker fetches the first kilobyte and accepts it only if it is a video.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from urllib.parse import urlsplit

import httpx

from vq_core.errors import ServiceError
from vq_core.models import ErrorCategory

SERVICE = "verify"
CALL = "GET video_url"
PROBE_BYTES = 1024
_EXCERPT_CHARS = 500


def _error(
    category: ErrorCategory,
    message: str,
    status_code: int | None = None,
    body: bytes | None = None,
) -> ServiceError:
    excerpt = None
    if body:
        excerpt = body[: _EXCERPT_CHARS * 4].decode("utf-8", errors="replace")[:_EXCERPT_CHARS]
    return ServiceError(
        category,
        f"video verification failed: {message}",
        service=SERVICE,
        call=CALL,
        status_code=status_code,
        body_excerpt=excerpt or None,
    )


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~0.1 s of CPU: once per process, not once per job.
    return httpx.create_ssl_context()


def looks_like_video(content_type: str | None, head: bytes) -> bool:
    """A ``video/*`` content type, or the MP4/ISO-BMFF ``ftyp`` box at bytes 4..8."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type.startswith("video/") or head[4:8] == b"ftyp"


async def _read_head(response: httpx.Response) -> bytes:
    """At most PROBE_BYTES of the body, even when the server ignores the Range header."""
    head = bytearray()
    async for chunk in response.aiter_bytes():
        head += chunk
        if len(head) >= PROBE_BYTES:
            break
    return bytes(head[:PROBE_BYTES])


async def _probe(client: httpx.AsyncClient, url: str, timeout: float) -> None:
    headers = {"Range": f"bytes=0-{PROBE_BYTES - 1}"}
    async with client.stream("GET", url, headers=headers, timeout=timeout) as response:
        head = await _read_head(response)
        status = response.status_code
        if status not in (200, 206):
            raise _error(ErrorCategory.BAD_RESPONSE, f"{url} answered {status}", status, head)
        content_type = response.headers.get("content-type")
        if not looks_like_video(content_type, head):
            raise _error(
                ErrorCategory.BAD_RESPONSE,
                f"{url} does not serve a video (content type {content_type or 'none'!s})",
                status,
                head,
            )


async def verify_video(
    url: str, client: httpx.AsyncClient | None = None, timeout: float = 10.0
) -> None:
    """Check that ``url`` serves a video: 200 or 206 to a ranged GET, and a video type or
    MP4 signature.

    :param url: the video URL a service returned; must be http(s).
    :param client: an HTTP client to reuse (a fresh one is made and closed otherwise).
    :param timeout: seconds for the whole check.
    :raises ServiceError: ``BAD_RESPONSE`` when the URL is unusable or is not a video,
        ``TIMEOUT`` or ``NETWORK`` when it cannot be fetched; all retryable.
    """
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise _error(ErrorCategory.BAD_RESPONSE, f"not an http(s) URL: {url!r}")
    own_client = client is None
    http = client or httpx.AsyncClient(follow_redirects=True, verify=_tls_context())
    try:
        # httpx times each read separately; a server dripping bytes must not hold us longer.
        async with asyncio.timeout(timeout):
            await _probe(http, url, timeout)
    except (httpx.TimeoutException, TimeoutError) as exc:
        raise _error(ErrorCategory.TIMEOUT, f"{url} timed out ({type(exc).__name__})") from exc
    except (httpx.TransportError, OSError) as exc:
        raise _error(
            ErrorCategory.NETWORK, f"{url} unreachable ({type(exc).__name__}: {exc})"
        ) from exc
    except httpx.HTTPError as exc:
        # Invalid URLs and too many redirects: the service handed us something unusable.
        raise _error(ErrorCategory.BAD_RESPONSE, f"{url}: {type(exc).__name__}: {exc}") from exc
    finally:
        if own_client:
            await http.aclose()
