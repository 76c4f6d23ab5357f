"""The ``webhook`` alert sink: a JSON POST per notification.

Configuration (``[plugin_config.webhook]`` in vq.toml or ``VQ_PLUGIN_CONFIG__WEBHOOK__URL``):

- ``url``: where to POST (no default: without it the sink is off);
- ``secret``: optional; when set, each request carries
  ``X-VQ-Signature: sha256=<hex HMAC-SHA256 of the body with the secret>``;
- ``timeout``: seconds per request (default 5).

The body holds every field of the alert plus ``text``, so a Slack (or Mattermost,
or Discord ``/slack``) incoming-webhook URL works without an adapter.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlsplit

import httpx

from vq_core import hookimpl
from vq_core.alerts.engine import alert_payload
from vq_core.alerts.model import Alert, AlertSink
from vq_core.config import ConfigError, Settings

SIGNATURE_HEADER = "X-VQ-Signature"


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSink:
    """POSTs alerts as JSON; a non-2xx answer is an error (the engine retries)."""

    name = "webhook"

    def __init__(self, url: str, secret: str | None = None, timeout: float = 5.0) -> None:
        self.url = url
        self.secret = secret
        self.timeout = timeout

    async def send(self, alert: Alert) -> None:
        """Deliver one alert."""
        body = json.dumps(alert_payload(alert), default=str).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "vq-alerts"}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(body, self.secret)
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            response = await client.post(self.url, content=body, headers=headers)
        response.raise_for_status()


def from_config(config: dict[str, Any]) -> WebhookSink | None:
    """Build the sink from its options; ``None`` when no URL is configured.

    :raises ConfigError: the URL is not http(s) with a host, or the timeout is not positive.
    """
    url = str(config.get("url") or "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"plugin_config.webhook.url: not an http(s) URL with a host: {url!r}")
    try:
        timeout = float(config.get("timeout", 5.0))
    except (TypeError, ValueError):
        timeout = -1.0
    if timeout <= 0:
        raise ConfigError("plugin_config.webhook.timeout: must be a positive number of seconds")
    secret = config.get("secret")
    return WebhookSink(url, str(secret) if secret else None, timeout)


@hookimpl
def vq_register_alert_sinks(settings: Settings) -> list[AlertSink]:
    """Provide the webhook sink when a URL is configured."""
    sink = from_config(settings.plugin_settings("webhook"))
    return [sink] if sink else []
