"""What an installation-wide alert sink may hold: its name, kind, target and secret.

The CLI (``vq alerts sinks add``) and the admin page both turn what a person typed into
a ``SinkSpec`` here, so a bad URL or e-mail address is refused at the edge with a
message naming the field, before anything is stored. The store keeps the spec; a
plugin builds the sink from it (the ``vq_alert_sink_from_config`` hook).

The secret (a webhook's signing key, an SMTP password) is kept apart from ``config``:
``config`` is shown to admins, the secret never is (``public_config`` is what lists show).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from vq_core.errors import InvalidInput
from vq_core.redact import redact_urls

WEBHOOK = "webhook"
EMAIL = "email"
#: The kinds of sink that can be stored (the table's CHECK constraint says the same).
SINK_KINDS = (WEBHOOK, EMAIL)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_URL = 2000
MAX_SECRET = 500
MAX_RECIPIENTS = 20
# local@domain: no spaces, quotes, brackets or separators in either part; the domain is
# dot-separated labels (``localhost`` included) or an IP literal in brackets.
_ADDRESS = re.compile(
    r"^[^@\s<>()\[\],;:\"\\]{1,64}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f.:]{2,45}\])$"
)
_HOST = re.compile(r"^[A-Za-z0-9.:\[\]-]{1,253}$")


@dataclass(frozen=True)
class SinkSpec:
    """A checked sink, ready to store: ``config`` holds only what may be shown."""

    name: str
    kind: str
    config: dict[str, Any]
    #: Never shown: kept out of ``repr`` so a logged spec does not leak it.
    secret: str | None = field(default=None, repr=False)


def check_name(name: str) -> str:
    """A sink's name: 1-64 letters, digits, ``_``, ``.``, ``-``, starting with a letter or digit.

    :raises InvalidInput: naming the rule.
    """
    name = (name or "").strip()
    if not NAME_PATTERN.match(name):
        raise InvalidInput(
            f"name: {name[:80]!r} is not a sink name (1-64 letters, digits, '_', '.', '-', "
            "starting with a letter or digit)"
        )
    return name


def check_url(url: str, field_name: str = "url") -> str:
    """An http(s) URL with a host.

    :raises InvalidInput: naming ``field_name`` and what is wrong.
    """
    url = (url or "").strip()
    if not url:
        raise InvalidInput(f"{field_name}: a webhook needs a URL")
    if len(url) > MAX_URL or any(c.isspace() for c in url):
        raise InvalidInput(f"{field_name}: not a URL (spaces, or longer than {MAX_URL})")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError as exc:
        raise InvalidInput(f"{field_name}: not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"{field_name}: must start with http:// or https://")
    if not host:
        raise InvalidInput(f"{field_name}: the URL has no host")
    return url


def check_address(address: str, field_name: str) -> str:
    """An e-mail address, ``local@domain``.

    :raises InvalidInput: naming ``field_name``.
    """
    address = (address or "").strip()
    if not _ADDRESS.match(address):
        raise InvalidInput(f"{field_name}: {address[:80]!r} is not an e-mail address")
    return address


def _recipients(to: str | Iterable[str]) -> list[str]:
    items = to.split(",") if isinstance(to, str) else [p for t in to for p in str(t).split(",")]
    addresses = [check_address(i, "to") for i in items if i.strip()]
    if not addresses:
        raise InvalidInput("to: an e-mail sink needs at least one recipient")
    if len(addresses) > MAX_RECIPIENTS:
        raise InvalidInput(f"to: at most {MAX_RECIPIENTS} recipients")
    return list(dict.fromkeys(addresses))


def _secret(secret: str | None) -> str | None:
    if secret is None or secret == "":
        return None
    if len(secret) > MAX_SECRET or "\x00" in secret:
        raise InvalidInput(f"secret: at most {MAX_SECRET} characters, no NUL")
    return secret


def _timeout(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if not 0 < timeout <= 120:
        raise InvalidInput("timeout: must be more than 0 and at most 120 seconds")
    return float(timeout)


def webhook_spec(
    name: str, url: str, secret: str | None = None, timeout: float | None = None
) -> SinkSpec:
    """A webhook sink: a signed JSON POST per notification (signed when ``secret`` is set).

    :raises InvalidInput: naming the field that is wrong.
    """
    config: dict[str, Any] = {"url": check_url(url)}
    if (t := _timeout(timeout)) is not None:
        config["timeout"] = t
    return SinkSpec(check_name(name), WEBHOOK, config, _secret(secret))


def email_spec(
    name: str,
    *,
    to: str | Iterable[str],
    host: str,
    sender: str,
    port: int | None = None,
    username: str | None = None,
    password: str | None = None,
    starttls: bool = False,
    use_ssl: bool = False,
    timeout: float | None = None,
) -> SinkSpec:
    """An e-mail sink: a message per notification over SMTP; ``password`` is its secret.

    :raises InvalidInput: naming the field that is wrong.
    """
    host = (host or "").strip()
    if not host or not _HOST.match(host):
        raise InvalidInput(f"host: {host[:80]!r} is not an SMTP host name or address")
    if port is not None and not 0 < port < 65536:
        raise InvalidInput("port: must be 1-65535")
    if starttls and use_ssl:
        raise InvalidInput("starttls and ssl: choose one (ssl speaks TLS from the start)")
    if password and not username:
        raise InvalidInput("password: needs a username")
    config: dict[str, Any] = {
        "host": host,
        "from": check_address(sender, "from"),
        "to": _recipients(to),
        "starttls": bool(starttls),
        "ssl": bool(use_ssl),
    }
    if port is not None:
        config["port"] = port
    if username:
        config["username"] = username.strip()
    if (t := _timeout(timeout)) is not None:
        config["timeout"] = t
    return SinkSpec(check_name(name), EMAIL, config, _secret(password))


def public_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as lists show it: the credentials of a URL replaced by ``***``."""
    return {k: redact_urls(v) if isinstance(v, str) else v for k, v in config.items()}


def target(kind: str, config: Mapping[str, Any]) -> str:
    """One line saying where a sink delivers: its URL, or ``to`` via the SMTP host."""
    if kind == WEBHOOK:
        return redact_urls(str(config.get("url", "")))
    if kind == EMAIL:
        to = config.get("to") or []
        recipients = ", ".join(to) if isinstance(to, list) else str(to)
        port = config.get("port", 465 if config.get("ssl") else 25)
        return f"{recipients} via {config.get('host', '?')}:{port}"
    return kind
