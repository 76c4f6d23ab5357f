"""Checking a rendered video before its job is marked completed.

A service that answers 200 with a URL has not necessarily made a video: the file
may not exist yet, the CDN may serve an error page, the link may point elsewhere.
The worker fetches the first kilobyte and accepts it only if it is a video.

The URL comes from a service, so the worker must not become a way to reach what only
it can reach: every URL, and every redirect hop, must be on an allowed origin
(``allowed_origins``) before it is fetched, and nothing of what a fetch returned is
kept but its status and content type.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Collection, Iterable, Iterator, Set
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from vq_core.config import ConfigError, Settings
from vq_core.errors import ServiceError
from vq_core.models import ErrorCategory
from vq_core.redact import redact_urls
from vq_core.video_service import (
    DeclaresVideoOrigins,
    VideoService,
    declared_video_origins,
    url_origin,
)

# httpx (and the TLS context with its CA bundle) is imported by the first check: a worker
# whose jobs return no video URL never loads it (about 9 MB of a worker's memory).
if TYPE_CHECKING:
    import ssl

    import httpx

SERVICE = "verify"
CALL = "GET video_url"
PROBE_BYTES = 1024
DEFAULT_MAX_REDIRECTS = 5


def _error(
    category: ErrorCategory,
    message: str,
    status_code: int | None = None,
    *,
    permanent: bool = False,
) -> ServiceError:
    # No body excerpt: the body is whatever the URL served, and the job's error is
    # shown to every viewer; for the same reason, no credentials a URL carried.
    return ServiceError(
        category,
        f"video verification failed: {redact_urls(message)}",
        service=SERVICE,
        call=CALL,
        status_code=status_code,
        permanent=permanent,
    )


def allowed_origins(settings: Settings, services: Iterable[VideoService]) -> Set[str]:
    """The origins a video URL may point to: ``settings.video_origins`` when set, else
    the origins the services declare plus this server's public URL (its ``/media``).

    :raises ConfigError: a service declared an origin that is not an http(s) URL.
    """
    if settings.video_origins:
        return frozenset(settings.video_origins)
    return DefaultOrigins(settings.resolved_public_url, list(services))


class DefaultOrigins(Set[str]):
    """The services' declared origins and the public URL's, written by ``url_origin``
    (httpx's parser) on first use, so that a worker whose jobs return no video URL does
    not import httpx; what is not an http(s) URL at all is refused at construction.

    :raises ConfigError: a service declared an origin that is not an http(s) URL.
    """

    def __init__(self, public_url: str, services: list[VideoService]) -> None:
        self._public_url = public_url
        self._services = services
        self._origins: frozenset[str] | None = None
        for service in services:
            if isinstance(service, DeclaresVideoOrigins):
                for url in service.video_origins():
                    if not _plain_http_url(url):
                        raise ConfigError(
                            f"video_origins: service {service.name}: video_origins(): "
                            f"not an absolute http(s) URL: {url!r}"
                        )

    @property
    def origins(self) -> frozenset[str]:
        """The origins, computed once."""
        if self._origins is None:
            try:
                origins = declared_video_origins(self._services)
                origins.add(url_origin(self._public_url))
            except ValueError as exc:
                raise ConfigError(f"video_origins: {exc}") from None
            self._origins = frozenset(origins)
        return self._origins

    def __contains__(self, origin: object) -> bool:
        return origin in self.origins

    def __iter__(self) -> Iterator[str]:
        return iter(self.origins)

    def __len__(self) -> int:
        return len(self.origins)

    def __repr__(self) -> str:
        return f"DefaultOrigins({sorted(self.origins)!r})"


def _plain_http_url(url: object) -> bool:
    # The start-up check without httpx: an http(s) scheme, a host and a valid port.
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~0.1 s of CPU: once per process, not once per job.
    import httpx

    return httpx.create_ssl_context()


class VerifyClient:
    """The client the checks share, made by the first check (with the TLS context): a
    worker that never checks a video URL does not import httpx nor load CA bundles."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    def get(self) -> httpx.AsyncClient:
        """The client, made on first call; it never follows a redirect by itself."""
        if self._client is None:
            import httpx  # on first use: see the module's imports

            self._client = httpx.AsyncClient(follow_redirects=False, verify=_tls_context())
        return self._client

    async def aclose(self) -> None:
        """Close the client if one was made."""
        if self._client is not None:
            await self._client.aclose()


def make_client() -> VerifyClient:
    """The client the checks share (made on first use); it never follows a redirect by
    itself."""
    return VerifyClient()


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


def _check_origin(url: httpx.URL, origins: Collection[str], what: str) -> None:
    try:
        origin = url_origin(url)
    except ValueError as exc:
        raise _error(ErrorCategory.BAD_RESPONSE, f"{what}: {exc}", permanent=True) from None
    if origin not in origins:
        raise _error(
            ErrorCategory.BAD_RESPONSE,
            f"{what} points to {origin}, which is not an allowed video origin "
            "(setting video_origins); not fetched",
            permanent=True,
        )


async def _probe(
    client: httpx.AsyncClient,
    url: str,
    timeout: float,
    origins: Collection[str],
    max_redirects: int,
) -> None:
    import httpx  # already imported by verify_video

    headers = {"Range": f"bytes=0-{PROBE_BYTES - 1}"}
    target = httpx.URL(url)
    _check_origin(target, origins, url)
    for hop in range(max_redirects + 1):
        # Redirects by hand, whatever the client was made with: each hop is checked
        # before it is requested.
        request = client.stream(
            "GET", target, headers=headers, timeout=timeout, follow_redirects=False
        )
        async with request as response:
            status = response.status_code
            if response.has_redirect_location:
                what = f"{url} redirect {hop + 1}"
                try:
                    target = target.join(response.headers["location"])
                except httpx.InvalidURL as exc:
                    raise _error(ErrorCategory.BAD_RESPONSE, f"{what}: {exc}", status) from None
                _check_origin(target, origins, what)
                continue
            head = await _read_head(response)
            if status not in (200, 206):
                raise _error(ErrorCategory.BAD_RESPONSE, f"{url} answered {status}", status)
            content_type = response.headers.get("content-type")
            if not looks_like_video(content_type, head):
                shown = (content_type or "none")[:100]  # the server's text: kept short
                raise _error(
                    ErrorCategory.BAD_RESPONSE,
                    f"{url} does not serve a video (content type {shown})",
                    status,
                )
            return
    raise _error(
        ErrorCategory.BAD_RESPONSE,
        f"{url} redirects more than {max_redirects} times (setting verify_max_redirects)",
    )


async def verify_video(
    url: str,
    client: httpx.AsyncClient | VerifyClient | None = None,
    timeout: float = 10.0,
    *,
    origins: Collection[str],
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
) -> None:
    """Check that ``url`` serves a video: 200 or 206 to a ranged GET, and a video type or
    MP4 signature.

    :param url: the video URL a service returned; must be http(s).
    :param client: an HTTP client to reuse (a fresh one is made and closed otherwise);
        its own redirect setting is overridden, redirects are followed here.
    :param timeout: seconds for the whole check.
    :param origins: the allowed origins, as ``vq_core.video_service.url_origin`` writes
        them (see ``allowed_origins``); the URL and every redirect hop must be one.
    :param max_redirects: redirects followed before the check fails.
    :raises ServiceError: ``BAD_RESPONSE`` when the URL is unusable, is not a video or
        redirects too often, ``TIMEOUT`` or ``NETWORK`` when it cannot be fetched, all
        retryable; ``BAD_RESPONSE`` marked permanent (not retried) when the URL or a
        redirect leaves the allowed origins, before anything is fetched from there.
    """
    if not isinstance(url, str):
        raise _error(ErrorCategory.BAD_RESPONSE, f"not an http(s) URL: {url!r}")
    try:
        url_origin(url)
    except ValueError:
        raise _error(ErrorCategory.BAD_RESPONSE, f"not an http(s) URL: {url!r}") from None
    import httpx  # on first use: see the module's imports

    own_client = client is None
    if client is None:
        http = httpx.AsyncClient(follow_redirects=False, verify=_tls_context())
    elif isinstance(client, VerifyClient):
        http = client.get()
    else:
        http = client
    try:
        # httpx times each read separately; a server dripping bytes must not hold us longer.
        async with asyncio.timeout(timeout):
            await _probe(http, url, timeout, origins, max_redirects)
    except (httpx.TimeoutException, TimeoutError) as exc:
        raise _error(ErrorCategory.TIMEOUT, f"{url} timed out ({type(exc).__name__})") from exc
    except (httpx.TransportError, OSError) as exc:
        raise _error(
            ErrorCategory.NETWORK, f"{url} unreachable ({type(exc).__name__}: {exc})"
        ) from exc
    except httpx.HTTPError as exc:
        # Invalid URLs and the like: the service handed us something unusable.
        raise _error(ErrorCategory.BAD_RESPONSE, f"{url}: {type(exc).__name__}: {exc}") from exc
    finally:
        if own_client:
            await http.aclose()
