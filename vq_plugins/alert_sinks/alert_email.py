"""The ``email`` alert sink: one message per notification over SMTP.

Configuration (``[plugin_config.email]`` or ``VQ_PLUGIN_CONFIG__EMAIL__HOST`` ...):

- ``host``: the SMTP server (no default: without it the sink is off);
- ``port``: default 25 (465 with ``ssl``);
- ``from``, ``to``: sender and recipients (``to`` a list or comma-separated);
- ``username``, ``password``: optional login;
- ``starttls`` / ``ssl``: upgrade the connection, or speak TLS from the start;
- ``timeout``: seconds for the whole exchange (default 10).

smtplib is blocking, so each message is sent in a thread: the event loop (and the
jobs on it) never waits for the mail server.

The same sink is built for each installation-wide ``email`` sink stored in
``vq.alert_sinks`` (``vq alerts sinks add NAME --kind email --to ADDR --smtp-host H
--from ADDR``), named after it; its stored secret is the SMTP password.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from vq_core import hookimpl
from vq_core.alerts.engine import alert_payload, alert_text
from vq_core.alerts.model import Alert, AlertSink
from vq_core.config import ConfigError, Settings
from vq_core.sink_config import EMAIL

SUBJECT_MAX = 200


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to send."""

    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    use_ssl: bool = False
    timeout: float = 10.0


def build_message(alert: Alert, sender: str, recipients: tuple[str, ...]) -> EmailMessage:
    """The e-mail for one alert: the one-line text as subject, every field in the body."""
    msg = EmailMessage()
    subject = alert_text(alert)
    msg["Subject"] = subject if len(subject) <= SUBJECT_MAX else subject[: SUBJECT_MAX - 1] + "…"
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    payload = alert_payload(alert)
    msg.set_content(
        f"{payload['text']}\n\n{json.dumps(payload, indent=2, default=str, sort_keys=True)}\n"
    )
    return msg


class EmailSink:
    """Sends alerts through an SMTP server."""

    def __init__(self, config: SmtpConfig, name: str = "email") -> None:
        self.config = config
        self.name = name

    def __repr__(self) -> str:
        return f"EmailSink(name={self.name!r})"  # never the password

    async def send(self, alert: Alert) -> None:
        """Deliver one alert (in a worker thread)."""
        msg = build_message(alert, self.config.sender, self.config.recipients)
        await asyncio.to_thread(self._send_blocking, msg)

    def _send_blocking(self, msg: EmailMessage) -> None:
        c = self.config
        smtp: smtplib.SMTP
        if c.use_ssl:
            smtp = smtplib.SMTP_SSL(
                c.host, c.port, timeout=c.timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout)
        with smtp:
            if c.starttls and not c.use_ssl:
                smtp.starttls(context=ssl.create_default_context())
            if c.username:
                smtp.login(c.username, c.password or "")
            smtp.send_message(msg)


def _flag(config: dict[str, Any], key: str) -> bool:
    value = config.get(key, False)
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _recipients(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value or [])
    return tuple(str(i).strip() for i in items if str(i).strip())


def from_config(
    config: dict[str, Any], name: str = "email", setting: str = "plugin_config.email"
) -> EmailSink | None:
    """Build the sink from its options; ``None`` when no host is configured.

    :param setting: where the options come from, for error messages.
    :raises ConfigError: naming the option that is missing or invalid.
    """
    host = str(config.get("host") or "").strip()
    if not host:
        return None
    use_ssl = _flag(config, "ssl")
    try:
        port = int(config.get("port", 465 if use_ssl else 25))
        timeout = float(config.get("timeout", 10.0))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{setting}: port/timeout must be numbers ({exc})") from None
    if not 0 < port < 65536 or timeout <= 0:
        raise ConfigError(f"{setting}: port must be 1-65535 and timeout positive")
    sender = str(config.get("from") or "").strip()
    recipients = _recipients(config.get("to"))
    if not sender or "@" not in sender:
        raise ConfigError(f"{setting}.from: an e-mail address is required")
    if not recipients:
        raise ConfigError(f"{setting}.to: at least one recipient is required")
    username = config.get("username")
    return EmailSink(
        SmtpConfig(
            host=host,
            port=port,
            sender=sender,
            recipients=recipients,
            username=str(username) if username else None,
            password=str(config["password"]) if config.get("password") else None,
            starttls=_flag(config, "starttls"),
            use_ssl=use_ssl,
            timeout=timeout,
        ),
        name,
    )


@hookimpl
def vq_register_alert_sinks(settings: Settings) -> list[AlertSink]:
    """Provide the e-mail sink when an SMTP host is configured."""
    sink = from_config(settings.plugin_settings("email"))
    return [sink] if sink else []


@hookimpl
def vq_alert_sink_from_config(
    kind: str, name: str, config: dict[str, Any], secret: str | None
) -> AlertSink | None:
    """Build an installation-wide e-mail sink stored in ``vq.alert_sinks``."""
    if kind != EMAIL:
        return None
    options = {**config, "password": secret} if secret else dict(config)
    sink = from_config(options, name, f"alert sink {name}")
    if sink is None:
        raise ConfigError(f"alert sink {name}: no SMTP host stored")
    return sink
