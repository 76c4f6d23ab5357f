"""Steering through the REST API over a real database: per-type settings, service caps,
bulk actions, the list's new filters and group keys (``vq_ui/api/types.py``,
``vq_ui/api/bulk.py``, ``vq_ui/api/jobs.py``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from vq_core.errors import ServiceError, error_record
from vq_core.models import ErrorCategory, JobStatus, NewJob
from vq_core.store import Store

pytest_plugins = ["support.api"]  # app, client, tokens

TYPES = "/api/v1/types"
JOBS = "/api/v1/jobs"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def failed_job(
    store: Store,
    job_type: str = "doubt",
    category: ErrorCategory = ErrorCategory.NETWORK,
    service: str = "local",
    group_key: str | None = None,
) -> uuid.UUID:
    """A job that failed for good, as a worker records it (the error the runner writes)."""
    job = await store.enqueue(NewJob(job_type, group_key=group_key))
    claimed = await store.claim("w-test", {job_type: service}, 1000, 30)
    assert job.id in [c.id for c in claimed]
    # Put the others back: only this job fails.
    await store.release("w-test", [c.id for c in claimed if c.id != job.id])
    error = error_record(ServiceError(category, "boom", service=service), category, 1, False)
    assert await store.fail("w-test", job.id, error, None) is JobStatus.FAILED
    return job.id


# -- per-type settings ----------------------------------------------------------------


async def test_patch_a_type_round_trip_records_who_changed_it(
    client: httpx.AsyncClient, tokens: dict[str, str], store: Store
) -> None:
    body = {"paused": True, "service": "local", "max_running": 4, "timeout_s": 90}
    r = await client.patch(f"{TYPES}/doubt", json=body, headers=bearer(tokens["operator"]))
    assert r.status_code == 200, r.text
    state = r.json()
    assert state["job_type"] == "doubt"
    assert state["state"] == "paused"
    assert state["configured"] is True
    settings = state["settings"]
    assert (settings["paused"], settings["service"], settings["max_running"]) == (
        True,
        "local",
        4,
    )
    assert settings["timeout_s"] == 90
    assert settings["updated_by"] == "token:t-operator"

    listed = await client.get(TYPES, headers=bearer(tokens["viewer"]))
    assert listed.status_code == 200
    assert [t for t in listed.json()["types"] if t["job_type"] == "doubt"] == [state]
    stored = (await store.list_queue_config())["doubt"]
    assert (stored.paused, stored.service, stored.max_running, stored.timeout_s) == (
        True,
        "local",
        4,
        90.0,
    )

    changes = await client.get(f"{TYPES}/doubt/changes", headers=bearer(tokens["viewer"]))
    assert changes.status_code == 200, changes.text
    (change,) = changes.json()["changes"]
    assert (change["subject"], change["actor"], change["via"]) == (
        "type:doubt",
        "token:t-operator",
        "api",
    )
    assert change["changes"]["paused"] == [False, True]
    assert change["changes"]["max_running"] == [None, 4]


async def test_null_clears_a_cap_and_the_service(
    client: httpx.AsyncClient, tokens: dict[str, str], store: Store
) -> None:
    op = bearer(tokens["operator"])
    first = {"service": "local", "max_running": 4, "max_running_per_group": 2}
    assert (await client.patch(f"{TYPES}/doubt", json=first, headers=op)).status_code == 200
    r = await client.patch(
        f"{TYPES}/doubt", json={"service": None, "max_running": None}, headers=op
    )
    assert r.status_code == 200, r.text
    settings = r.json()["settings"]
    assert (settings["service"], settings["max_running"]) == (None, None)
    assert settings["max_running_per_group"] == 2  # left out: unchanged
    stored = (await store.list_queue_config())["doubt"]
    assert (stored.service, stored.max_running, stored.max_running_per_group) == (None, None, 2)
    latest = (await store.config_changes("type:doubt"))[0]
    assert latest.changes == {"service": ["local", None], "max_running": [4, None]}


async def test_a_patch_that_changes_nothing_records_nothing_new(
    client: httpx.AsyncClient, tokens: dict[str, str], store: Store
) -> None:
    op = bearer(tokens["operator"])
    for _ in range(2):
        r = await client.patch(f"{TYPES}/doubt", json={"max_retries": 5}, headers=op)
        assert r.status_code == 200
    assert len(await store.config_changes("type:doubt")) == 1


@pytest.mark.parametrize(
    ("path", "body", "status", "detail"),
    [
        ("doubt", {"timeout_s": 0}, 422, "timeout_s: Input should be greater than 0"),
        ("doubt", {"timeout_s": "NaN"}, 422, "timeout_s:"),
        ("doubt", {"concurrency": 0}, 422, "concurrency: Input should be greater"),
        ("doubt", {"max_running": 2.5}, 422, "max_running:"),
        ("doubt", {"max_running_per_group": -1}, 422, "max_running_per_group:"),
        ("doubt", {"max_retries": 100_000}, 422, "max_retries:"),
        ("doubt", {"paused": "yes"}, 422, "paused: Input should be a valid boolean"),
        ("doubt", {"service": ""}, 422, "service: String should have at least 1"),
        ("doubt", {"colour": "red"}, 422, "colour: Extra inputs are not permitted"),
        ("doubt", [], 422, "body:"),
        ("bad%20type!", {"paused": True}, 422, "type: String should match pattern"),
        ("doubt", {"paused": None}, 400, "paused: may not be null"),
        ("doubt", {"timeout_s": None}, 400, "timeout_s: may not be null"),
        ("doubt", {"service": "nul\u0000"}, 400, "service: text may not contain NUL"),
    ],
)
async def test_bad_values_are_refused_naming_the_field_and_nothing_is_stored(
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    store: Store,
    path: str,
    body: Any,
    status: int,
    detail: str,
) -> None:
    r = await client.patch(f"{TYPES}/{path}", json=body, headers=bearer(tokens["operator"]))
    assert r.status_code == status, r.text
    assert r.json()["detail"].startswith(detail), r.json()
    assert await store.list_queue_config() == {}
    assert await store.config_changes() == []


async def test_types_list_shows_unconfigured_types_with_the_defaults(
    client: httpx.AsyncClient, tokens: dict[str, str], store: Store
) -> None:
    await store.enqueue(NewJob("essay"))
    r = await client.get(TYPES, headers=bearer(tokens["viewer"]))
    (essay,) = r.json()["types"]
    assert (essay["job_type"], essay["configured"], essay["state"]) == ("essay", False, "unrouted")
    assert essay["counts"]["ready"] == 1
    assert essay["settings"]["timeout_s"] == 600  # settings.default_timeout
    assert "jobs wait" in essay["problem"]


# -- service caps ---------------------------------------------------------------------


async def test_service_cap_round_trip(
    client: httpx.AsyncClient, tokens: dict[str, str], store: Store
) -> None:
    await store.record_service_health("local", True, None, ["doubt"])
    op = bearer(tokens["operator"])
    r = await client.patch("/api/v1/services/local", json={"max_running": 3}, headers=op)
    assert r.status_code == 200, r.text
    assert r.json() == {"service": "local", "max_running": 3}
    assert await store.list_service_limits() == {"local": 3}
    shown = (await client.get("/api/v1/services", headers=bearer(tokens["viewer"]))).json()
    assert [s["max_running"] for s in shown["services"]] == [3]
    assert [(c["service"], c["updated_by"]) for c in shown["limits"]] == [
        ("local", "token:t-operator")
    ]
    types = (await client.get(TYPES, headers=bearer(tokens["viewer"]))).json()["types"]
    assert [t["service_max_running"] for t in types] == [3]

    r = await client.patch("/api/v1/services/local", json={"max_running": None}, headers=op)
    assert r.status_code == 200
    assert await store.list_service_limits() == {}
    changes = await store.config_changes("service:local")
    assert [(c.actor, c.via, c.changes) for c in changes] == [
        ("token:t-operator", "api", {"max_running": [3, None]}),
        ("token:t-operator", "api", {"max_running": [None, 3]}),
    ]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, "max_running: Field required"),
        ({"max_running": 0}, "max_running: Input should be greater than or equal to 1"),
        ({"max_running": "3"}, "max_running: Input should be a valid integer"),
        ({"max_running": 3, "x": 1}, "x: Extra inputs"),
    ],
)
async def test_bad_service_caps_are_422_and_store_nothing(
    client: httpx.AsyncClient, tokens: dict[str, str], store: Store, body: Any, detail: str
) -> None:
    r = await client.patch("/api/v1/services/local", json=body, headers=bearer(tokens["operator"]))
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(detail)
    assert await store.list_service_limits() == {}


# -- who may ----------------------------------------------------------------------------

MUTATING = [
    ("PATCH", f"{TYPES}/doubt", {"paused": True}),
    ("PATCH", "/api/v1/services/local", {"max_running": 2}),
    ("POST", f"{JOBS}/retry", {"all": True}),
    ("POST", f"{JOBS}/cancel", {"all": True}),
    ("POST", f"{JOBS}/retry", {"all": True, "dry_run": True}),
]


@pytest.mark.parametrize(("method", "path", "body"), MUTATING)
async def test_mutating_routes_need_an_operator(
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    store: Store,
    method: str,
    path: str,
    body: dict[str, Any],
) -> None:
    failed = await failed_job(store)
    queued = (await store.enqueue(NewJob("doubt"))).id
    anonymous = await client.request(method, path, json=body)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["www-authenticate"] == "Bearer"
    viewer = await client.request(method, path, json=body, headers=bearer(tokens["viewer"]))
    assert viewer.status_code == 403, viewer.text
    assert viewer.json()["detail"] == "role viewer may not act"
    # Nothing happened.
    assert await store.list_queue_config() == {}
    assert await store.list_service_limits() == {}
    assert (await store.get_job(failed)).status is JobStatus.FAILED
    assert (await store.get_job(queued)).status is JobStatus.QUEUED
    # And an operator may.
    operator = await client.request(method, path, json=body, headers=bearer(tokens["operator"]))
    assert operator.status_code == 200, operator.text


@pytest.mark.parametrize("path", [TYPES, f"{TYPES}/doubt/changes"])
async def test_reading_needs_a_viewer(
    client: httpx.AsyncClient, tokens: dict[str, str], path: str
) -> None:
    assert (await client.get(path)).status_code == 401
    assert (await client.get(path, headers=bearer(tokens["viewer"]))).status_code == 200


async def test_new_routes_are_in_the_openapi_document_with_their_errors(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/api/v1/openapi.json")).json()["paths"]
    expected = {
        "/api/v1/types": {"get": {"401", "403"}},
        "/api/v1/types/{type}": {"patch": {"401", "403", "422"}},
        "/api/v1/types/{type}/changes": {"get": {"401", "403", "422"}},
        "/api/v1/services/{name}": {"patch": {"401", "403", "422"}},
        "/api/v1/jobs/retry": {"post": {"401", "403", "422"}},
        "/api/v1/jobs/cancel": {"post": {"401", "403", "422"}},
    }
    for path, methods in expected.items():
        for method, codes in methods.items():
            operation = paths[path][method]
            assert codes <= set(operation["responses"]), (path, method)
            assert operation["description"] or operation["summary"]
            assert "schema" in operation["responses"]["200"]["content"]["application/json"]


# -- bulk actions -----------------------------------------------------------------------


async def test_bulk_retry_acts_on_exactly_the_matches(
    client: httpx.AsyncClient, tokens: dict[str, str], store: Store
) -> None:
    match = [await failed_job(store, category=ErrorCategory.NETWORK) for _ in range(3)]
    other_category = await failed_job(store, category=ErrorCategory.TIMEOUT)
    other_type = await failed_job(store, job_type="essay", category=ErrorCategory.NETWORK)
    queued = (await store.enqueue(NewJob("doubt"))).id
    body = {"job_type": "doubt", "category": "NETWORK"}
    op = bearer(tokens["operator"])

    dry = await client.post(f"{JOBS}/retry", json={**body, "dry_run": True}, headers=op)
    assert dry.status_code == 200, dry.text
    assert dry.json() == {"action": "retry", "matched": 3}
    assert {(await store.get_job(j)).status for j in match} == {JobStatus.FAILED}

    r = await client.post(f"{JOBS}/retry", json=body, headers=op)
    assert r.status_code == 200, r.text
    assert r.json() == {"action": "retry", "acted": 3, "running": 0}
    for job_id in match:
        assert (await store.get_job(job_id)).status is JobStatus.QUEUED
        last = (await store.get_events(job_id))[-1]
        assert last.event == "retried"
        assert last.details is not None
        assert (last.details["by"], last.details["via"]) == ("token:t-operator", "api")
    for job_id in (other_category, other_type):
        assert (await store.get_job(job_id)).status is JobStatus.FAILED
    assert (await store.get_job(queued)).status is JobStatus.QUEUED
    again = await client.post(f"{JOBS}/retry", json={**body, "dry_run": True}, headers=op)
    assert again.json()["matched"] == 0


async def test_bulk_cancel_by_group_and_service(
    client: httpx.AsyncClient, tokens: dict[str, str], store: Store
) -> None:
    ann = [(await store.enqueue(NewJob("doubt", group_key="ann"))).id for _ in range(2)]
    bob = (await store.enqueue(NewJob("doubt", group_key="bob"))).id
    op = bearer(tokens["operator"])
    r = await client.post(f"{JOBS}/cancel", json={"group_key": "ann"}, headers=op)
    assert r.status_code == 200, r.text
    assert r.json() == {"action": "cancel", "acted": 2, "running": 0}
    assert {(await store.get_job(j)).status for j in ann} == {JobStatus.CANCELLED}
    assert (await store.get_job(bob)).status is JobStatus.QUEUED
    cancelled = (await store.get_events(ann[0]))[-1]
    assert cancelled.details is not None and cancelled.details["via"] == "api"

    # Cancelled before they ran, they have no service: that filter matches none of them.
    r = await client.post(f"{JOBS}/retry", json={"service": "local"}, headers=op)
    assert r.json()["acted"] == 0
    r = await client.post(f"{JOBS}/retry", json={"status": "cancelled"}, headers=op)
    assert r.json()["acted"] == 2


@pytest.mark.parametrize("body", [{}, {"dry_run": True}, {"text": "   "}, {"all": False}])
@pytest.mark.parametrize("action", ["retry", "cancel"])
async def test_an_empty_filter_is_refused_without_all(
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    store: Store,
    action: str,
    body: dict[str, Any],
) -> None:
    failed = await failed_job(store)
    queued = (await store.enqueue(NewJob("doubt"))).id
    r = await client.post(f"{JOBS}/{action}", json=body, headers=bearer(tokens["operator"]))
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("all: no filter given")
    assert r.json()["errors"][0]["field"] == "all"
    assert (await store.get_job(failed)).status is JobStatus.FAILED
    assert (await store.get_job(queued)).status is JobStatus.QUEUED


async def test_all_acts_on_every_job(
    client: httpx.AsyncClient, tokens: dict[str, str], store: Store
) -> None:
    failed = [await failed_job(store, job_type=t) for t in ("doubt", "essay")]
    r = await client.post(f"{JOBS}/retry", json={"all": True}, headers=bearer(tokens["admin"]))
    assert r.json() == {"action": "retry", "acted": 2, "running": 0}
    assert {(await store.get_job(j)).status for j in failed} == {JobStatus.QUEUED}
    last = (await store.get_events(failed[0]))[-1]
    assert last.details is not None and last.details["by"] == "token:t-admin"


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"status": "lost"}, 422, "status: Input should be"),
        ({"category": "OOPS"}, 422, "category: Input should be"),
        ({"job_type": "bad type!"}, 422, "job_type: String should match"),
        ({"created_after": "2026-01-01T00:00:00"}, 422, "created_after: Input should have"),
        ({"job_type": "doubt", "colour": 1}, 422, "colour: Extra inputs"),
        ({"text": "nul\u0000"}, 400, "text: text may not contain NUL"),
        ({"created_before": "0001-01-01T00:00:00+05:00"}, 400, "created_before: out of range"),
    ],
)
async def test_bad_bulk_bodies(
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    store: Store,
    body: dict[str, Any],
    status: int,
    detail: str,
) -> None:
    failed = await failed_job(store)
    r = await client.post(f"{JOBS}/retry", json=body, headers=bearer(tokens["operator"]))
    assert r.status_code == status, r.text
    assert r.json()["detail"].startswith(detail), r.json()
    assert (await store.get_job(failed)).status is JobStatus.FAILED


async def test_bulk_routes_leave_the_single_job_routes_alone(
    client: httpx.AsyncClient, tokens: dict[str, str], store: Store
) -> None:
    failed = await failed_job(store)
    r = await client.post(f"{JOBS}/{failed}/retry", headers=bearer(tokens["operator"]))
    assert r.status_code == 200, r.text
    assert r.json()["id"] == str(failed)
    # "retry" is no job id: the GET of /jobs/{job_id} still says so.
    assert (await client.get(f"{JOBS}/retry", headers=bearer(tokens["viewer"]))).status_code == 422


# -- the list's new filters -------------------------------------------------------------


async def listed(client: httpx.AsyncClient, token: str, **params: str) -> list[str]:
    r = await client.get(JOBS, params=params, headers=bearer(token))
    assert r.status_code == 200, r.text
    return sorted(j["id"] for j in r.json()["jobs"])


async def test_list_filters_by_category_service_group_and_time(
    client: httpx.AsyncClient, tokens: dict[str, str], store: Store
) -> None:
    network = await failed_job(store, category=ErrorCategory.NETWORK, service="local")
    timeout = await failed_job(store, category=ErrorCategory.TIMEOUT, service="orchestrator")
    ann = (await store.enqueue(NewJob("doubt", group_key="ann"))).id
    old = (await store.enqueue(NewJob("doubt"))).id
    await store.pool.execute(
        "UPDATE vq.jobs SET created_at = now() - interval '2 days' WHERE id = $1", old
    )
    viewer = tokens["viewer"]
    assert await listed(client, viewer, category="NETWORK") == [str(network)]
    assert await listed(client, viewer, category="TIMEOUT") == [str(timeout)]
    assert await listed(client, viewer, service="orchestrator") == [str(timeout)]
    assert await listed(client, viewer, group_key="ann") == [str(ann)]
    day_ago = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert await listed(client, viewer, created_before=day_ago) == [str(old)]
    recent = await listed(client, viewer, created_after=day_ago)
    assert recent == sorted(str(j) for j in (network, timeout, ann))
    both = await listed(client, viewer, created_after=day_ago, service="local")
    assert both == [str(network)]


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"category": "OOPS"}, "category: Input should be"),
        ({"created_after": "2026-01-01T00:00:00"}, "created_after: Input should have timezone"),
        ({"created_after": "yesterday"}, "created_after: Input should be a valid datetime"),
        ({"group_key": ""}, "group_key: String should have at least 1"),
    ],
)
async def test_bad_list_filters_are_422(
    client: httpx.AsyncClient, tokens: dict[str, str], params: dict[str, str], detail: str
) -> None:
    r = await client.get(JOBS, params=params, headers=bearer(tokens["viewer"]))
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(detail), r.json()


# -- group keys on submission -----------------------------------------------------------


async def test_group_key_on_submission_is_stored_shown_and_used(
    client: httpx.AsyncClient, tokens: dict[str, str], store: Store
) -> None:
    op = bearer(tokens["operator"])
    one = await client.post(JOBS, json={"job_type": "doubt", "group_key": "ann"}, headers=op)
    assert one.status_code == 201, one.text
    keyed = await client.post(
        JOBS,
        json={"job_type": "doubt", "group_key": "ann"},
        headers={**op, "Idempotency-Key": "k-ann"},
    )
    assert keyed.status_code == 201, keyed.text
    batch = await client.post(
        JOBS,
        json=[{"job_type": "doubt", "group_key": "bob"}, {"job_type": "doubt"}],
        headers={**op, "Idempotency-Key": "batch"},
    )
    assert batch.status_code == 201, batch.text
    ids = [one.json()["id"], keyed.json()["id"], *(j["id"] for j in batch.json()["jobs"])]
    shown = []
    for job_id in ids:
        document = (await client.get(f"{JOBS}/{job_id}", headers=bearer(tokens["viewer"]))).json()
        shown.append(document["group_key"])
    assert shown == ["ann", "ann", "bob", None]
    assert (await store.get_job(uuid.UUID(keyed.json()["id"]))).idempotency_key == "k-ann"

    # Used: with one running job per group, a claim takes one of ann's and bob's, and
    # the job without a group.
    cap = {"max_running_per_group": 1}
    assert (await client.patch(f"{TYPES}/doubt", json=cap, headers=op)).status_code == 200
    claimed = await store.claim("w", {"doubt": "local"}, 10, 30, limited=["doubt"])
    groups = sorted([(await store.get_job(c.id)).group_key or "-" for c in claimed])
    assert groups == ["-", "ann", "bob"]


@pytest.mark.parametrize(
    ("group_key", "status", "detail"),
    [
        ("", 422, "group_key: String should have at least 1"),
        ("x" * 201, 422, "group_key: String should have at most 200"),
        (7, 422, "group_key: Input should be a valid string"),
        ("nul\u0000", 400, "group_key: text may not contain NUL"),
    ],
)
async def test_bad_group_keys(
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    store: Store,
    group_key: Any,
    status: int,
    detail: str,
) -> None:
    body = {"job_type": "doubt", "group_key": group_key}
    r = await client.post(JOBS, json=body, headers=bearer(tokens["operator"]))
    assert r.status_code == status, r.text
    assert r.json()["detail"].startswith(detail), r.json()
    assert await listed(client, tokens["viewer"]) == []
