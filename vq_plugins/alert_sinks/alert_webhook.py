"""The ``webhook`` alert sink: a JSON POST per notification.

Configuration (``[plugin_config.webhook]`` in vq.toml or ``VQ_PLUGIN_CONFIG__WEBHOOK__URL``):

- ``url``: where to POST (no default: without it the sink is off);
- ``secret``: optional; when set, each request carries ``X-VQ-Timestamp: <unix
  seconds>`` and ``X-VQ-Signature: v1=<hex HMAC-SHA256, keyed with the secret, of
  "<timestamp>." followed by the raw body>``. Signing the time with the body lets a
  receiver refuse a captured request replayed later (``verify`` is the check);
- ``timeout``: seconds per request (default 5).

The body holds every field of the alert plus ``text``, so a Slack (or Mattermost,
or Discord ``/slack``) incoming-webhook URL works without an adapter.

The same sink is built for each installation-wide ``webhook`` sink stored in
``vq.alert_sinks`` (``vq alerts sinks add NAME --kind webhook --url URL``), named after it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from vq_core import hookimpl
from vq_core.alerts.engine import alert_payload
from vq_core.alerts.model import Alert, AlertSink, SinkError
from vq_core.config import ConfigError, Settings
from vq_core.redact import redact_urls
from vq_core.sink_config import WEBHOOK

# httpx is imported by the first alert sent: a worker loads every sink plugin, and most
# never send (about 9 MB of memory with what httpx imports).
if TYPE_CHECKING:
    import httpx

SIGNATURE_HEADER = "X-VQ-Signature"
TIMESTAMP_HEADER = "X-VQ-Timestamp"
SIGNATURE_VERSION = "v1"
# How old a signed request a receiver should still accept, in seconds.
DEFAULT_TOLERANCE = 300


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The signature header's value: ``v1=<hex HMAC-SHA256 of b"<timestamp>." + body>``."""
    message = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def verify(
    body: bytes,
    secret: str,
    timestamp: str | None,
    signature: str | None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """The receiver's check of a request: a fresh timestamp and a matching signature.

    :param body: the raw request body, before any JSON parsing.
    :param timestamp: the ``X-VQ-Timestamp`` header (``None`` when missing).
    :param signature: the ``X-VQ-Signature`` header (``None`` when missing).
    :param tolerance: the oldest (and the furthest in the future) a timestamp may be,
        in seconds; 5 minutes by default.
    :param now: the current Unix time (for tests); ``time.time()`` otherwise.
    """
    if timestamp is None or signature is None:
        return False
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        return False
    # Constant-time, so the comparison tells an attacker nothing about the digest.
    return hmac.compare_digest(sign(body, secret, int(timestamp)), signature.strip())


@functools.cache
def receiver_refused() -> type[SinkError]:
    """The error of a non-2xx answer, ``ReceiverRefused``: a ``SinkError`` and an
    ``httpx.HTTPStatusError`` whose message names the status only (httpx's own names the
    URL, which may hold a token). Made on first use, as httpx is imported then."""
    import httpx

    class ReceiverRefused(SinkError, httpx.HTTPStatusError):
        def __init__(self, response: httpx.Response) -> None:
            message = f"the receiver answered HTTP {response.status_code}"
            httpx.HTTPStatusError.__init__(
                self, message, request=response.request, response=response
            )

    return ReceiverRefused


class WebhookSink:
    """POSTs alerts as JSON; a non-2xx answer is an error (the engine retries)."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: str | None = None,
        timeout: float = 5.0,
        name: str = "webhook",
    ) -> None:
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.name = name

    def __repr__(self) -> str:
        # Never the secret (nor the URL, which may hold a token: Slack's does).
        return f"WebhookSink(name={self.name!r})"

    async def send(self, alert: Alert) -> None:
        """Deliver one alert."""
        body = json.dumps(alert_payload(alert), default=str).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "vq-alerts"}
        if self.secret:
            # A fresh timestamp per attempt: a retried delivery is signed anew.
            timestamp = int(time.time())
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = sign(body, self.secret, timestamp)
        import httpx  # on first use: see the module's imports

        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise SinkError(f"no answer within {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            # The class and text of a transport error, not httpx's message naming the URL.
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise SinkError(detail) from None
        if not response.is_success:
            raise receiver_refused()(response)


def from_config(
    config: dict[str, Any], name: str = "webhook", setting: str = "plugin_config.webhook"
) -> WebhookSink | None:
    """Build the sink from its options; ``None`` when no URL is configured.

    :param setting: where the options come from, for error messages.
    :raises ConfigError: the URL is not http(s) with a host, or the timeout is not positive.
    """
    url = str(config.get("url") or "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{setting}.url: not an http(s) URL with a host: {redact_urls(url)!r}")
    try:
        timeout = float(config.get("timeout", 5.0))
    except (TypeError, ValueError):
        timeout = -1.0
    if timeout <= 0:
        raise ConfigError(f"{setting}.timeout: must be a positive number of seconds")
    secret = config.get("secret")
    return WebhookSink(url, str(secret) if secret else None, timeout, name)


@hookimpl
def vq_register_alert_sinks(settings: Settings) -> list[AlertSink]:
    """Provide the webhook sink when a URL is configured."""
    sink = from_config(settings.plugin_settings("webhook"))
    return [sink] if sink else []


@hookimpl
def vq_alert_sink_from_config(
    kind: str, name: str, config: dict[str, Any], secret: str | None
) -> AlertSink | None:
    """Build an installation-wide webhook sink stored in ``vq.alert_sinks``."""
    if kind != WEBHOOK:
        return None
    sink = from_config({**config, "secret": secret}, name, f"alert sink {name}")
    if sink is None:
        raise ConfigError(f"alert sink {name}: no url stored")
    return sink
