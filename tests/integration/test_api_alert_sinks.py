"""The installation's alert sinks through the REST API (``vq_ui/api/alert_sinks.py``):
list, add, remove, a test send to a real loopback receiver, the delivery record, and
the role checks of every route. Real PostgreSQL; no secret in any answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from support.alert_receivers import HttpReceiver, http_receiver

from vq_core.config import Settings
from vq_core.models import Actor
from vq_core.sink_config import webhook_spec
from vq_core.store import Store
from vq_plugins.alert_sinks.alert_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

pytest_plugins = ["support.api"]  # app, client, tokens

SINKS = "/api/v1/alerts/sinks"
TEST = "/api/v1/alerts/test"
DELIVERIES = "/api/v1/alerts/deliveries"
SECRET = "hook-secret-never-answered-5d1e"
PASSWORD = "smtp-password-never-answered-8b2f"
WEBHOOK = {"name": "ops-hook", "kind": "webhook", "url": "http://127.0.0.1:9/hook"}
EMAIL = {
    "name": "oncall",
    "kind": "email",
    "to": ["ops@example.org", "lead@example.org"],
    "smtp_host": "127.0.0.1",
    "smtp_port": 2525,
    "from": "vq@example.org",
    "username": "vq",
    "password": PASSWORD,
    "starttls": True,
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Quick retries, so a failing sink's three attempts take milliseconds."""
    fast = {"sink_retry_delay": 0.01, "sink_timeout": 2.0}
    return settings.model_copy(update={"alerts": settings.alerts.model_copy(update=fast)})


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    async with http_receiver() as r:
        yield r


def no_secret(response: httpx.Response) -> None:
    assert SECRET not in response.text and PASSWORD not in response.text, response.text


# -- round trip ---------------------------------------------------------------------


async def test_add_list_remove_round_trip_never_answers_a_secret(
    client: httpx.AsyncClient, tokens: dict[str, str], store: Store
) -> None:
    admin = bearer(tokens["admin"])
    empty = await client.get(SINKS, headers=admin)
    assert empty.status_code == 200, empty.text
    assert empty.json() == {"sinks": [], "log_only": True}

    hook = await client.post(SINKS, json={**WEBHOOK, "secret": SECRET}, headers=admin)
    assert hook.status_code == 201, hook.text
    no_secret(hook)
    assert hook.json()["has_secret"] is True
    assert hook.json()["created_by"] == "token:t-admin"
    assert hook.json()["target"] == "http://127.0.0.1:9/hook"
    mail = await client.post(SINKS, json=EMAIL, headers=admin)
    assert mail.status_code == 201, mail.text
    no_secret(mail)
    assert mail.json()["target"] == "ops@example.org, lead@example.org via 127.0.0.1:2525"
    assert mail.json()["config"]["username"] == "vq"

    listed = await client.get(SINKS, headers=admin)
    assert listed.status_code == 200
    no_secret(listed)
    body = listed.json()
    assert body["log_only"] is False
    assert [(s["name"], s["kind"], s["has_secret"]) for s in body["sinks"]] == [
        ("oncall", "email", True),
        ("ops-hook", "webhook", True),
    ]
    # What the store holds is what was sent: the secrets reach the delivering side.
    stored = {s.name: s for s in await store.deliverable_alert_sinks()}
    assert stored["ops-hook"].secret == SECRET and stored["oncall"].secret == PASSWORD
    assert stored["oncall"].config["to"] == ["ops@example.org", "lead@example.org"]

    again = await client.post(SINKS, json={**WEBHOOK, "url": "http://127.0.0.1:9/x"}, headers=admin)
    assert again.status_code == 409, again.text
    assert "already exists" in again.json()["detail"]
    assert stored["ops-hook"].config["url"] == "http://127.0.0.1:9/hook"

    removed = await client.delete(f"{SINKS}/ops-hook", headers=admin)
    assert removed.status_code == 200, removed.text
    assert removed.json() == {"removed": "ops-hook"}
    gone = await client.delete(f"{SINKS}/ops-hook", headers=admin)
    assert gone.status_code == 404, gone.text
    assert gone.json()["detail"] == "name: no alert sink named 'ops-hook'"
    assert [s.name for s in await store.list_alert_sinks()] == ["oncall"]


async def test_url_credentials_are_hidden_in_answers(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    url = "http://user:pw-in-url@127.0.0.1:9/hook"
    r = await client.post(SINKS, json={**WEBHOOK, "url": url}, headers=bearer(tokens["admin"]))
    assert r.status_code == 201, r.text
    listed = await client.get(SINKS, headers=bearer(tokens["admin"]))
    for answer in (r, listed):
        assert "pw-in-url" not in answer.text
        assert "http://***@127.0.0.1:9/hook" in answer.text


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({**WEBHOOK, "url": "ftp://127.0.0.1/x"}, "url", "must start with http"),
        ({**WEBHOOK, "url": "http:///nohost"}, "url", "the URL has no host"),
        ({k: v for k, v in WEBHOOK.items() if k != "url"}, "url", "a webhook needs a URL"),
        ({**WEBHOOK, "name": "bad name"}, "name", "is not a sink name"),
        ({**WEBHOOK, "timeout": 0}, "timeout", "must be more than 0"),
        ({**WEBHOOK, "to": ["ops@example.org"]}, "to", "not a field of a webhook sink"),
        ({**WEBHOOK, "kind": "pager"}, "kind", "Input should be"),
        ({**WEBHOOK, "colour": "red"}, "colour", "Extra inputs are not permitted"),
        ({**EMAIL, "to": ["not-an-address"]}, "to", "'not-an-address' is not an e-mail address"),
        ({**EMAIL, "to": []}, "to", "needs at least one recipient"),
        ({**EMAIL, "from": "nobody"}, "from", "is not an e-mail address"),
        ({**EMAIL, "smtp_host": ""}, "smtp_host", "is not an SMTP host"),
        ({**EMAIL, "smtp_port": 70000}, "smtp_port", "must be 1-65535"),
        ({**EMAIL, "ssl": True}, "ssl", "choose one"),
        ({**EMAIL, "username": None}, "password", "needs a username"),
        ({**EMAIL, "url": "http://127.0.0.1/"}, "url", "not a field of an e-mail sink"),
    ],
)
async def test_bad_sinks_are_422_naming_the_field_and_nothing_is_stored(
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    store: Store,
    body: dict[str, Any],
    field: str,
    message: str,
) -> None:
    r = await client.post(SINKS, json=body, headers=bearer(tokens["admin"]))
    assert r.status_code == 422, r.text
    (error,) = r.json()["errors"]
    assert error["field"] == field, r.text
    assert message in error["message"], r.text
    assert r.json()["detail"].startswith(f"{field}: ")
    no_secret(r)
    assert await store.list_alert_sinks() == []


# -- the test send and the delivery record --------------------------------------------


async def test_a_test_notification_reaches_a_loopback_receiver_and_is_listed(
    client: httpx.AsyncClient, tokens: dict[str, str], receiver: HttpReceiver
) -> None:
    admin = bearer(tokens["admin"])
    body = {**WEBHOOK, "url": receiver.url + "/hook", "secret": SECRET}
    assert (await client.post(SINKS, json=body, headers=admin)).status_code == 201
    r = await client.post(TEST, headers=admin)
    assert r.status_code == 200, r.text
    no_secret(r)
    answer = r.json()
    assert answer["all_sent"] is True
    outcomes = {(d["sink"], d["installation_wide"]): d for d in answer["deliveries"]}
    assert outcomes[("ops-hook", True)]["outcome"] == "sent"
    assert outcomes[("ops-hook", True)]["attempts"] == 1
    assert outcomes[("log", False)]["outcome"] == "sent"  # this web process's own sink

    # It arrived, signed with the stored secret, and names who sent it.
    (request,) = receiver.requests
    assert request.path == "/hook"
    assert request.json()["key"] == "test"
    assert "token:t-admin (api)" in request.json()["summary"]
    assert verify(
        request.body,
        SECRET,
        request.headers.get(TIMESTAMP_HEADER.lower()),
        request.headers.get(SIGNATURE_HEADER.lower()),
    )

    listed = await client.get(DELIVERIES, headers=bearer(tokens["operator"]))
    assert listed.status_code == 200, listed.text
    no_secret(listed)
    per_sink = {(s["sink"], s["installation_wide"]): s for s in listed.json()["sinks"]}
    hook = per_sink[("ops-hook", True)]
    assert hook["last_outcome"] == "sent"
    assert [(a["alert_key"], a["attempt"], a["outcome"]) for a in hook["attempts"]] == [
        ("test", 1, "sent")
    ]
    assert (
        per_sink[("log", False)]["attempts"][0]["notification"]
        == (hook["attempts"][0]["notification"])
    )


async def test_a_failing_sink_is_an_outcome_with_every_attempt_listed(
    client: httpx.AsyncClient, tokens: dict[str, str], receiver: HttpReceiver, store: Store
) -> None:
    admin = bearer(tokens["admin"])
    async with http_receiver(status=503) as failing:
        broken = {**WEBHOOK, "name": "broken", "url": failing.url, "secret": SECRET}
        working = {**WEBHOOK, "name": "working", "url": receiver.url}
        for body in (broken, working):
            assert (await client.post(SINKS, json=body, headers=admin)).status_code == 201
        r = await client.post(TEST, headers=admin)
        assert r.status_code == 200, r.text
        no_secret(r)
        assert len(failing.requests) == 3  # sink_attempts, each one refused
    answer = r.json()
    assert answer["all_sent"] is False
    outcomes = {d["sink"]: d for d in answer["deliveries"]}
    assert (outcomes["broken"]["outcome"], outcomes["broken"]["attempts"]) == ("failed", 3)
    assert outcomes["broken"]["detail"] == "the receiver answered HTTP 503"
    assert outcomes["working"]["outcome"] == "sent"
    assert receiver.alert_keys() == ["test"]

    listed = await client.get(DELIVERIES, params={"limit": 50}, headers=admin)
    assert listed.status_code == 200, listed.text
    per_sink = {s["sink"]: s for s in listed.json()["sinks"]}
    assert per_sink["broken"]["last_outcome"] == "failed"
    assert [a["outcome"] for a in per_sink["broken"]["attempts"]] == [
        "failed",
        "retried",
        "retried",
    ]
    assert [a["outcome"] for a in per_sink["working"]["attempts"]] == ["sent"]
    only_two = await client.get(DELIVERIES, params={"limit": 2}, headers=admin)
    assert sum(len(s["attempts"]) for s in only_two.json()["sinks"]) == 2


async def test_deliveries_limit_is_checked(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    for limit in (0, 5001, "many"):
        r = await client.get(DELIVERIES, params={"limit": limit}, headers=bearer(tokens["admin"]))
        assert r.status_code == 422, r.text
        assert r.json()["detail"].startswith("limit: ")


# -- role checks ----------------------------------------------------------------------

ADMIN_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", SINKS, None),
    ("POST", SINKS, {**WEBHOOK, "name": "new-hook"}),
    ("DELETE", f"{SINKS}/kept", None),
    ("POST", TEST, None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_sink_routes_are_for_admins_only(
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    store: Store,
    receiver: HttpReceiver,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    await store.add_alert_sink(webhook_spec("kept", receiver.url, SECRET), Actor("alice", "cli"))
    anonymous = await client.request(method, path, json=body)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["www-authenticate"] == "Bearer"
    for role in ("viewer", "operator"):
        refused = await client.request(method, path, json=body, headers=bearer(tokens[role]))
        assert refused.status_code == 403, refused.text
        assert refused.json()["detail"] == f"role {role} may not admin"
    # Nothing happened: the sink is there, no other was added, nothing was sent.
    assert [s.name for s in await store.list_alert_sinks()] == ["kept"]
    assert receiver.requests == []
    assert await store.list_alert_deliveries() == []
    allowed = await client.request(method, path, json=body, headers=bearer(tokens["admin"]))
    assert allowed.status_code in (200, 201), allowed.text
    no_secret(allowed)


async def test_deliveries_need_a_sign_in_and_any_role(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    anonymous = await client.get(DELIVERIES)
    assert anonymous.status_code == 401, anonymous.text
    for role in ("viewer", "operator", "admin"):
        r = await client.get(DELIVERIES, headers=bearer(tokens[role]))
        assert r.status_code == 200, r.text
        assert r.json() == {"sinks": []}


async def test_the_routes_are_in_the_openapi_document_with_their_errors(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/api/v1/openapi.json")).json()["paths"]
    expected = {
        (SINKS, "get"): ({"401", "403"}, "200"),
        (SINKS, "post"): ({"401", "403", "409", "422"}, "201"),
        (f"{SINKS}/{{name}}", "delete"): ({"401", "403", "404", "422"}, "200"),
        (TEST, "post"): ({"401", "403"}, "200"),
        (DELIVERIES, "get"): ({"401", "422"}, "200"),
    }
    for (path, method), (codes, ok) in expected.items():
        operation = paths[path][method]
        assert codes <= set(operation["responses"]), (path, method)
        assert operation["description"] or operation["summary"]
        assert "$ref" in operation["responses"][ok]["content"]["application/json"]["schema"]
    body = paths[SINKS]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/NewSink")
