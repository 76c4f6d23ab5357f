"""The alert sink plugins against real loopback servers: webhook (signed), e-mail, log."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.alert_receivers import SmtpReceiver, http_receiver

from vq_core.alerts.engine import alert_payload, alert_text
from vq_core.alerts.model import Alert
from vq_core.config import ConfigError
from vq_core.logs import JsonFormatter
from vq_plugins.alert_sinks import alert_email, alert_webhook
from vq_plugins.alert_sinks.alert_log import LogSink

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def firing(send_count: int = 1) -> Alert:
    return Alert(
        key="queue_depth:doubt",
        rule="queue_depth",
        state="firing",
        summary="25 doubt jobs ready in the queue (threshold 20)",
        first_seen=NOW,
        last_seen=NOW + timedelta(minutes=20),
        details={"ready": 25, "threshold": 20},
        send_count=send_count,
    )


def resolved() -> Alert:
    return Alert(
        key="queue_depth:doubt",
        rule="queue_depth",
        state="resolved",
        summary="25 doubt jobs ready in the queue (threshold 20)",
        first_seen=NOW,
        last_seen=NOW + timedelta(minutes=30),
        resolved_at=NOW + timedelta(minutes=31),
        send_count=3,
    )


def test_text_and_payload() -> None:
    assert alert_text(firing()) == (
        "[vq] FIRING queue_depth:doubt: 25 doubt jobs ready in the queue (threshold 20)"
    )
    assert alert_text(firing(2)).endswith("(still firing, for 20m)")
    assert alert_text(resolved()) == (
        "[vq] RESOLVED queue_depth:doubt after 31m "
        "(was: 25 doubt jobs ready in the queue (threshold 20))"
    )
    payload = alert_payload(resolved())
    assert payload["resolved_at"] == "2026-01-02T03:35:05+00:00"
    assert payload["repeat"] is False and payload["text"] == alert_text(resolved())
    assert json.loads(json.dumps(payload)) == payload


async def test_webhook_posts_json_with_slack_text_and_a_valid_signature() -> None:
    async with http_receiver() as hook:
        sink = alert_webhook.from_config({"url": f"{hook.url}/hooks/vq", "secret": "s3cret"})
        assert sink is not None
        await sink.send(firing())
    (request,) = hook.requests
    assert request.method == "POST" and request.path == "/hooks/vq"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["text"] == alert_text(firing()) and body["details"]["ready"] == 25
    # The documented scheme, recomputed by hand: HMAC-SHA256 over "<timestamp>.<body>".
    timestamp = request.headers["x-vq-timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    signed = timestamp.encode() + b"." + request.body
    expected = hmac.new(b"s3cret", signed, hashlib.sha256).hexdigest()
    assert request.headers["x-vq-signature"] == f"v1={expected}"
    assert alert_webhook.verify(request.body, "s3cret", timestamp, f"v1={expected}")


async def test_the_receiver_check_in_the_security_docs_accepts_what_the_sink_sends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    [snippet] = [b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if "def verify(" in b]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "docs/security.md", "exec"), namespace)
    receiver_check = namespace["verify"]
    async with http_receiver() as hook:
        sink = alert_webhook.WebhookSink(hook.url, secret="s3cret")
        await sink.send(firing())
        sent = time.time()
        # The same alert, sent six minutes earlier: what a captured request looks like.
        with monkeypatch.context() as earlier:
            earlier.setattr(time, "time", lambda: sent - 360)
            await sink.send(firing())
    fresh, old = hook.requests
    headers = ("x-vq-timestamp", "x-vq-signature")
    assert receiver_check(fresh.body, "s3cret", *(fresh.headers[h] for h in headers))
    assert not receiver_check(old.body, "s3cret", *(old.headers[h] for h in headers))
    assert not receiver_check(fresh.body, "wrong", *(fresh.headers[h] for h in headers))


def test_a_replayed_or_altered_webhook_fails_the_receivers_check() -> None:
    body = b'{"key": "queue_depth:doubt"}'
    sent_at = 1_767_000_000
    signature = alert_webhook.sign(body, "s3cret", sent_at)
    check = alert_webhook.verify
    assert check(body, "s3cret", str(sent_at), signature, now=sent_at + 299)
    # Replayed later than the tolerance (5 minutes by default), or from the future.
    assert not check(body, "s3cret", str(sent_at), signature, now=sent_at + 301)
    assert not check(body, "s3cret", str(sent_at), signature, now=sent_at - 301)
    # A fresh timestamp pasted onto the old signature: the signature covers the time.
    assert not check(body, "s3cret", str(sent_at + 200), signature, now=sent_at + 200)
    # Another body, another secret, a missing or malformed header.
    assert not check(body + b" ", "s3cret", str(sent_at), signature, now=sent_at)
    assert not check(body, "other", str(sent_at), signature, now=sent_at)
    assert not check(body, "s3cret", None, signature, now=sent_at)
    assert not check(body, "s3cret", str(sent_at), None, now=sent_at)
    for bad in ("soon", "-1", "1\u00b2", ""):  # not plain ASCII digits; "²" would crash int()
        assert not check(body, "s3cret", bad, signature, now=sent_at)
    unversioned = signature.removeprefix("v1=")
    assert not check(body, "s3cret", str(sent_at), unversioned, now=sent_at)


async def test_webhook_without_secret_is_unsigned_and_errors_raise() -> None:
    async with http_receiver(status=502) as hook:
        sink = alert_webhook.WebhookSink(hook.url)
        with pytest.raises(httpx.HTTPStatusError, match="502"):
            await sink.send(firing())
    assert "x-vq-signature" not in hook.requests[0].headers
    assert "x-vq-timestamp" not in hook.requests[0].headers


def test_webhook_configuration() -> None:
    assert alert_webhook.from_config({}) is None
    with pytest.raises(ConfigError, match=r"webhook\.url"):
        alert_webhook.from_config({"url": "ftp://127.0.0.1/x"})
    with pytest.raises(ConfigError, match=r"webhook\.timeout"):
        alert_webhook.from_config({"url": "http://127.0.0.1:9/x", "timeout": "soon"})


async def test_email_goes_through_smtp() -> None:
    server = SmtpReceiver()
    port = await server.start()
    try:
        sink = alert_email.from_config(
            {
                "host": "127.0.0.1",
                "port": port,
                "from": "vq@example.org",
                "to": "ops@example.org, oncall@example.org",
                "timeout": 5,
            }
        )
        assert sink is not None
        await sink.send(resolved())
    finally:
        await server.close()
    ((sender, rcpts, data),) = server.messages
    assert sender == "vq@example.org"
    assert rcpts == ["ops@example.org", "oncall@example.org"]
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["Subject"].startswith("[vq] RESOLVED queue_depth:doubt")
    assert '"state": "resolved"' in msg.get_body().get_content()  # type: ignore[union-attr]


def test_email_configuration() -> None:
    assert alert_email.from_config({"to": "a@example.org"}) is None
    with pytest.raises(ConfigError, match=r"email\.to"):
        alert_email.from_config({"host": "127.0.0.1", "from": "vq@example.org"})
    with pytest.raises(ConfigError, match=r"email\.from"):
        alert_email.from_config({"host": "127.0.0.1", "to": ["a@example.org"]})
    with pytest.raises(ConfigError, match="port"):
        alert_email.from_config(
            {"host": "127.0.0.1", "port": "x", "from": "v@e.org", "to": "a@e.org"}
        )


async def test_log_sink_carries_the_alert_in_json_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="vq.alerts.sink"):
        await LogSink().send(firing())
        await LogSink().send(resolved())
    warn, info = caplog.records
    assert warn.levelno == logging.WARNING and info.levelno == logging.INFO
    line = json.loads(JsonFormatter().format(warn))
    assert line["alert_key"] == "queue_depth:doubt" and line["alert_state"] == "firing"
    assert line["message"].startswith("[vq] FIRING")
