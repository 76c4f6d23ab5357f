"""The REST API over a real database: every route, role and error."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from vq_core import db
from vq_core.config import Settings
from vq_core.models import NewJob
from vq_core.store import Store
from vq_ui.app import create_app
from vq_ui.auth import users

pytest_plugins = ["support.api"]  # app, client, tokens
BASE = "http://127.0.0.1:8080"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


JOBS = "/api/v1/jobs"
SOME_ID = "00000000-0000-4000-8000-000000000001"


async def submit(
    client: httpx.AsyncClient, token: str, body: Any, **headers: str
) -> httpx.Response:
    return await client.post(JOBS, json=body, headers={**bearer(token), **headers})


# -- submitting ---------------------------------------------------------------------


async def test_submit_one_job_in_the_platform_shape(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    body = {"job_type": "doubt", "priority": "high", "payload": {"question": "Why is sky blue?"}}
    r = await submit(client, tokens["operator"], body)
    assert r.status_code == 201, r.text
    assert r.json()["created"] is True
    assert r.headers["location"] == f"{JOBS}/{r.json()['id']}"
    job = (await client.get(r.headers["location"], headers=bearer(tokens["viewer"]))).json()
    assert job["status"] == "queued"
    assert job["priority"] == "high"
    assert job["payload"] == {"question": "Why is sky blue?"}
    assert [e["event"] for e in job["events"]] == ["created"]


async def test_submit_a_list(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    body = [{"job_type": "doubt", "payload": {"question": f"q{i}"}} for i in range(3)]
    r = await submit(client, tokens["operator"], body)
    assert r.status_code == 201, r.text
    ids = [j["id"] for j in r.json()["jobs"]]
    assert len(set(ids)) == 3
    assert all(j["created"] for j in r.json()["jobs"])


async def test_idempotency_key_header_deduplicates(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    body = {"job_type": "doubt", "payload": {"question": "once"}}
    first = await submit(client, tokens["operator"], body, **{"Idempotency-Key": "k-1"})
    again = await submit(client, tokens["operator"], body, **{"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert again.json()["created"] is False
    listed = await client.get(JOBS, headers=bearer(tokens["viewer"]))
    assert len(listed.json()["jobs"]) == 1


async def test_idempotency_key_header_on_a_list_keys_each_item(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    body = [{"job_type": "doubt"}, {"job_type": "doubt"}]
    first = await submit(client, tokens["operator"], body, **{"Idempotency-Key": "batch"})
    again = await submit(client, tokens["operator"], body, **{"Idempotency-Key": "batch"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() != again.json()  # created flags differ
    assert [j["id"] for j in first.json()["jobs"]] == [j["id"] for j in again.json()["jobs"]]
    job = await client.get(
        f"{JOBS}/{first.json()['jobs'][1]['id']}", headers=bearer(tokens["viewer"])
    )
    assert job.json()["idempotency_key"] == "batch#1"


async def test_header_and_body_keys_must_agree(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    body = {"job_type": "doubt", "idempotency_key": "a"}
    r = await submit(client, tokens["operator"], body, **{"Idempotency-Key": "b"})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("Idempotency-Key:")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"priority": "high"}, 422, "job_type: Field required"),
        ({"job_type": "doubt", "priority": "asap"}, 422, "priority: Input should be"),
        ({"job_type": "doubt", "colour": "red"}, 422, "colour: Extra inputs"),
        ({"job_type": "doubt", "payload": []}, 422, "payload: Input should be a valid dict"),
        ({"job_type": "doubt", "run_at": "2030-01-01T00:00:00"}, 422, "run_at: Value error"),
        ({"job_type": "bad type!"}, 422, "job_type: String should match"),
        ({"job_type": "doubt", "max_retries": -1}, 422, "max_retries:"),
        ([{"job_type": "doubt"}, {"job_type": "doubt", "priority": 9}], 422, "1.priority:"),
        ([], 400, "body: send between 1 and"),
        ("a string", 422, "body: must be a job object or a list"),
        ({"job_type": "doubt", "payload": {"q": "nul\u0000"}}, 400, "payload: text may not"),
        (
            {"job_type": "doubt", "run_at": "0001-01-01T00:00:00+05:00"},
            400,
            "run_at: out of range",
        ),
    ],
)
async def test_bad_submissions_name_the_field(
    client: httpx.AsyncClient, tokens: dict[str, str], body: Any, status: int, field: str
) -> None:
    r = await submit(client, tokens["operator"], body)
    assert r.status_code == status, r.text
    assert field in r.json()["detail"]


async def test_nan_in_payload_is_refused(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    raw = b'{"job_type": "doubt", "payload": {"x": NaN}}'
    headers = {**bearer(tokens["operator"]), "content-type": "application/json"}
    r = await client.post(JOBS, content=raw, headers=headers)
    assert r.status_code in (400, 422)
    assert "payload" in r.json()["detail"]


def _deep(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


UNSTORABLE: list[tuple[str, int, str]] = [
    # (raw JSON of one job, status, start of detail); FastAPI reads the body with json,
    # so these arrive as Python's json makes them: NUL, lone surrogates, NaN, inf.
    ('{"job_type": "doubt", "payload": {"q": "a\\u0000b"}}', 400, "payload: text may not"),
    ('{"job_type": "doubt", "payload": {"a\\u0000": 1}}', 400, "payload: text may not"),
    ('{"job_type": "doubt", "payload": {"q": "\\ud800"}}', 400, "payload: text may not"),
    ('{"job_type": "doubt", "payload": {"\\udc00": [1]}}', 400, "payload: text may not"),
    ('{"job_type": "doubt", "payload": {"q": NaN}}', 400, "payload: numbers must be"),
    ('{"job_type": "doubt", "payload": {"q": -Infinity}}', 400, "payload: numbers must be"),
    ('{"job_type": "doubt", "payload": {"q": 1e400}}', 400, "payload: numbers must be"),
    ('{"job_type": "doubt", "run_at": "9999-12-31T23:59:59-23:00"}', 400, "run_at: out of"),
    ('{"job_type": "doubt", "idempotency_key": "a\\u0000"}', 400, "idempotency_key: text"),
    ('{"job_type": "doubt", "idempotency_key": "\\ud800"}', 422, "idempotency_key: Input"),
    ('{"job_type": "do\\u0000ubt"}', 422, "job_type: String should match"),
    ('{"job_type": "doubt", "payload": ' + _deep(150) + "}", 422, "payload: nested deeper"),
    # Too deep for json itself: FastAPI's own answer, which names no field.
    ('{"job_type": "doubt", "payload": ' + _deep(5000) + "}", 400, "There was an error parsing"),
]


async def _stored(client: httpx.AsyncClient, tokens: dict[str, str]) -> list[Any]:
    r = await client.get(JOBS, headers=bearer(tokens["viewer"]))
    jobs: list[Any] = r.json()["jobs"]
    return jobs


async def test_what_postgresql_cannot_store_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, tokens: dict[str, str], subtests: pytest.Subtests
) -> None:
    headers = {**bearer(tokens["operator"]), "content-type": "application/json"}
    for one, status, detail in UNSTORABLE:
        # In a batch, a good job comes first: the batch is refused whole, its bad item named.
        batch = f'[{{"job_type": "doubt"}}, {one}]'
        in_batch = detail if detail.startswith("There") else f"1.{detail}"
        for raw, expected in ((one, detail), (batch, in_batch)):
            with subtests.test(body=raw[:60]):
                r = await client.post(JOBS, content=raw.encode(), headers=headers)
                assert r.status_code == status, r.text
                assert r.json()["detail"].startswith(expected)
    assert await _stored(client, tokens) == []


async def test_run_at_is_stored_in_utc(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    # +23:00 is valid ISO 8601 but beyond PostgreSQL's offsets (15:59): UTC it is.
    body = [{"job_type": "doubt", "run_at": "2030-01-01T00:00:00+23:00"}]
    r = await submit(client, tokens["operator"], body)
    assert r.status_code == 201, r.text
    assert [j["run_at"] for j in await _stored(client, tokens)] == ["2029-12-31T01:00:00+00:00"]


async def test_malformed_json_is_a_422(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    headers = {**bearer(tokens["operator"]), "content-type": "application/json"}
    r = await client.post(JOBS, content=b'{"job_type": ', headers=headers)
    assert r.status_code == 422
    assert "JSON" in r.json()["detail"]


# -- reading ------------------------------------------------------------------------


async def _seed(store: Store) -> list[uuid.UUID]:
    jobs = [
        NewJob("doubt", {"question": "gravity on the moon"}),
        NewJob("doubt", {"question": "photosynthesis"}, priority=1),
        NewJob("clip", {"topic": "gravity waves"}, priority=0),
        NewJob("clip", {"topic": "volcanoes"}),
        NewJob("doubt", {"question": "rainbows"}, priority=3),
    ]
    return [e.id for e in await store.enqueue_many(jobs)]


async def test_list_filters(
    client: httpx.AsyncClient, store: Store, tokens: dict[str, str]
) -> None:
    ids = await _seed(store)
    await store.cancel(ids[3])
    h = bearer(tokens["viewer"])

    async def found(**params: str) -> set[str]:
        r = await client.get(JOBS, params=params, headers=h)
        assert r.status_code == 200, r.text
        return {j["id"] for j in r.json()["jobs"]}

    assert await found(type="clip") == {str(ids[2]), str(ids[3])}
    assert await found(status="cancelled") == {str(ids[3])}
    assert await found(priority="urgent") == {str(ids[2])}
    assert await found(q="GRAVITY") == {str(ids[0]), str(ids[2])}
    assert await found(q=str(ids[4])) == {str(ids[4])}
    assert await found(type="doubt", priority="low") == {str(ids[4])}
    r = await client.get(JOBS, params={"sort": "priority"}, headers=h)
    assert [j["priority"] for j in r.json()["jobs"]] == [
        "urgent",
        "high",
        "normal",
        "normal",
        "low",
    ]


async def test_cursor_paging_visits_every_job_once(
    client: httpx.AsyncClient, store: Store, tokens: dict[str, str]
) -> None:
    ids = {str(e.id) for e in await store.enqueue_many([NewJob("doubt") for _ in range(7)])}
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(JOBS, params=params, headers=bearer(tokens["viewer"]))).json()
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen)) == 7


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"status": "sleeping"}, 422, "status:"),
        ({"priority": "asap"}, 422, "priority:"),
        ({"limit": "0"}, 422, "limit:"),
        ({"limit": "501"}, 422, "limit:"),
        ({"sort": "colour"}, 422, "sort:"),
        ({"cursor": "not-a-cursor"}, 400, "cursor:"),
        ({"q": "x" * 201}, 422, "q:"),
        ({"q": "a\u0000b"}, 422, "q:"),
    ],
)
async def test_bad_list_parameters_name_the_field(
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    params: dict[str, str],
    status: int,
    field: str,
) -> None:
    r = await client.get(JOBS, params=params, headers=bearer(tokens["viewer"]))
    assert r.status_code == status, r.text
    assert r.json()["detail"].startswith(field)


async def test_a_cursor_of_another_sort_is_a_400(
    client: httpx.AsyncClient, store: Store, tokens: dict[str, str]
) -> None:
    await store.enqueue_many([NewJob("doubt") for _ in range(3)])
    h = bearer(tokens["viewer"])
    page = (await client.get(JOBS, params={"limit": "1"}, headers=h)).json()
    r = await client.get(
        JOBS, params={"limit": "1", "sort": "priority", "cursor": page["next_cursor"]}, headers=h
    )
    assert r.status_code == 400
    assert r.json()["detail"].startswith("cursor:")


async def test_unknown_and_malformed_job_ids(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    h = bearer(tokens["operator"])
    missing = uuid.uuid4()
    for method, path in [
        ("GET", f"{JOBS}/{missing}"),
        ("POST", f"{JOBS}/{missing}/cancel"),
        ("POST", f"{JOBS}/{missing}/retry"),
    ]:
        r = await client.request(method, path, headers=h)
        assert r.status_code == 404, (path, r.text)
        assert str(missing) in r.json()["detail"]
    r = await client.get(f"{JOBS}/not-a-uuid", headers=h)
    assert r.status_code == 422
    assert r.json()["detail"].startswith("job_id:")


# -- acting -------------------------------------------------------------------------


async def test_cancel_then_retry(
    client: httpx.AsyncClient, store: Store, tokens: dict[str, str]
) -> None:
    job_id = (await store.enqueue(NewJob("doubt"))).id
    h = bearer(tokens["operator"])
    r = await client.post(f"{JOBS}/{job_id}/cancel", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    again = await client.post(f"{JOBS}/{job_id}/cancel", headers=h)
    assert again.status_code == 409
    assert "cancelled" in again.json()["detail"]
    r = await client.post(f"{JOBS}/{job_id}/retry", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "queued"
    again = await client.post(f"{JOBS}/{job_id}/retry", headers=h)
    assert again.status_code == 409
    events = (await client.get(f"{JOBS}/{job_id}", headers=h)).json()["events"]
    assert [e["event"] for e in events] == ["created", "cancelled", "retried"]
    assert events[1]["details"] == {"by": "token:t-operator", "via": "api"}


# -- roles --------------------------------------------------------------------------

ROUTES: list[tuple[str, str, str, Any]] = [
    ("read", "GET", JOBS, None),
    ("read", "GET", f"{JOBS}/{SOME_ID}", None),
    ("read", "GET", "/api/v1/stats", None),
    ("read", "GET", "/api/v1/workers", None),
    ("read", "GET", "/api/v1/services", None),
    ("read", "GET", "/api/v1/metrics", None),
    ("read", "GET", "/api/v1/me", None),
    ("act", "POST", JOBS, {"job_type": "doubt"}),
    ("act", "POST", f"{JOBS}/{SOME_ID}/cancel", None),
    ("act", "POST", f"{JOBS}/{SOME_ID}/retry", None),
    ("admin", "GET", "/api/v1/users", None),
    ("admin", "POST", "/api/v1/users", {"username": "x", "role": "viewer"}),
    ("admin", "PATCH", "/api/v1/users/nobody", {"disabled": True}),
    ("admin", "GET", "/api/v1/tokens", None),
    ("admin", "POST", "/api/v1/tokens", {"name": "x", "role": "viewer"}),
    ("admin", "DELETE", "/api/v1/tokens/999", None),
]
ALLOWED = {
    "read": {"admin", "operator", "viewer"},
    "act": {"admin", "operator"},
    "admin": {"admin"},
}
# What an allowed caller gets from each route: its real answer, never a server error.
ANSWER = {
    ("GET", JOBS): 200,
    ("GET", f"{JOBS}/{SOME_ID}"): 404,
    ("GET", "/api/v1/stats"): 200,
    ("GET", "/api/v1/workers"): 200,
    ("GET", "/api/v1/services"): 200,
    ("GET", "/api/v1/metrics"): 200,
    ("GET", "/api/v1/me"): 200,
    ("POST", JOBS): 201,
    ("POST", f"{JOBS}/{SOME_ID}/cancel"): 404,
    ("POST", f"{JOBS}/{SOME_ID}/retry"): 404,
    ("GET", "/api/v1/users"): 200,
    ("POST", "/api/v1/users"): 201,
    ("PATCH", "/api/v1/users/nobody"): 404,
    ("GET", "/api/v1/tokens"): 200,
    ("POST", "/api/v1/tokens"): 201,
    ("DELETE", "/api/v1/tokens/999"): 404,
}


@pytest.mark.parametrize(("action", "method", "path", "body"), ROUTES)
async def test_every_route_checks_the_role(
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    action: str,
    method: str,
    path: str,
    body: Any,
) -> None:
    anonymous = await client.request(method, path, json=body)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    forged = await client.request(method, path, json=body, headers=bearer("vq_forged"))
    assert forged.status_code == 401
    for role, token in tokens.items():
        r = await client.request(method, path, json=body, headers=bearer(token))
        if role in ALLOWED[action]:
            assert r.status_code == ANSWER[method, path], (role, r.text)
        else:
            assert r.status_code == 403, (role, r.text)
            assert f"role {role} may not {action}" in r.json()["detail"]


async def test_a_revoked_token_is_refused(
    client: httpx.AsyncClient, store: Store, tokens: dict[str, str]
) -> None:
    h = bearer(tokens["viewer"])
    assert (await client.get(JOBS, headers=h)).status_code == 200
    await users.revoke_token(store, "t-viewer")
    assert (await client.get(JOBS, headers=h)).status_code == 401


# -- the queue as a whole -----------------------------------------------------------


async def test_stats_workers_services(
    client: httpx.AsyncClient, store: Store, tokens: dict[str, str]
) -> None:
    await _seed(store)
    await store.record_service_health("local", True, None, ["doubt"])
    h = bearer(tokens["viewer"])
    stats = (await client.get("/api/v1/stats", headers=h)).json()
    assert stats["by_status"]["queued"] == 5
    assert stats["by_type"]["clip"]["queued"] == 2
    assert stats["depth"] == 5
    assert (await client.get("/api/v1/workers", headers=h)).json() == {"workers": []}
    services = (await client.get("/api/v1/services", headers=h)).json()["services"]
    assert [(s["service"], s["healthy"]) for s in services] == [("local", True)]


async def test_healthz_and_readyz_need_no_auth(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/healthz")).json() == {"status": "ok"}
    r = await client.get("/api/v1/readyz")
    assert (r.status_code, r.json()) == (200, {"status": "ready"})


async def test_readyz_reports_pending_migrations(empty_dsn: str, settings: Settings) -> None:
    pool = await db.create_pool(empty_dsn, min_size=1, max_size=2)
    try:
        app_ = create_app(settings, Store(pool), admin_page=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_), base_url=BASE) as c:
            r = await c.get("/api/v1/readyz")
        assert r.status_code == 503
        assert "pending migrations: 0001_initial" in r.json()["reason"]
    finally:
        await pool.close()


async def test_readyz_reports_an_unreachable_database(settings: Settings, dsn: str) -> None:
    pool = await db.create_pool(dsn, min_size=1, max_size=2)
    app_ = create_app(settings, Store(pool), admin_page=False)
    await pool.close()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_), base_url=BASE) as c:
        r = await c.get("/api/v1/readyz")
    assert r.status_code == 503
    # Anonymous callers learn the kind of failure, not its text.
    assert r.json()["reason"] == "database unreachable (InterfaceError)"


async def test_metrics(client: httpx.AsyncClient, store: Store, tokens: dict[str, str]) -> None:
    await _seed(store)
    await store.record_service_health("local", False, "refused", ["doubt"])
    r = await client.get("/api/v1/metrics", headers=bearer(tokens["viewer"]))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'vq_queue_jobs{status="queued"} 5.0' in text
    assert 'vq_queue_jobs_by_type{job_type="clip",status="queued"} 2.0' in text
    assert "vq_queue_depth 5.0" in text
    assert 'vq_queue_service_up{service="local"} 0.0' in text
    assert "python_info" in text  # the default registry's collectors come along
    assert 'vq_queue_ready_by_type{job_type="clip"} 2.0' in text  # the metrics plugin's gauges


async def test_metrics_can_be_public(settings: Settings, store: Store) -> None:
    open_settings = settings.model_copy(update={"plugin_config": {"ui": {"metrics_public": True}}})
    app_ = create_app(open_settings, store, admin_page=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_), base_url=BASE) as c:
        r = await c.get("/api/v1/metrics")
    assert r.status_code == 200
    assert "vq_queue_depth 0.0" in r.text


# -- users and tokens ---------------------------------------------------------------


async def test_admin_manages_users(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    h = bearer(tokens["admin"])
    r = await client.post("/api/v1/users", json={"username": "ann", "role": "operator"}, headers=h)
    assert r.status_code == 201, r.text
    assert len(r.json()["password"]) >= 16  # generated and shown once
    dup = await client.post("/api/v1/users", json={"username": "ann", "role": "viewer"}, headers=h)
    assert dup.status_code == 409
    assert dup.json()["detail"].startswith("username:")
    bad = await client.post("/api/v1/users", json={"username": "ann", "role": "boss"}, headers=h)
    assert bad.status_code == 422 and bad.json()["detail"].startswith("role:")
    short = await client.post(
        "/api/v1/users", json={"username": "bo", "role": "viewer", "password": "short"}, headers=h
    )
    assert short.status_code == 422 and short.json()["detail"].startswith("password:")
    r = await client.patch(
        "/api/v1/users/ann", json={"role": "viewer", "disabled": True}, headers=h
    )
    assert (r.json()["role"], r.json()["disabled"]) == ("viewer", True)
    listed = (await client.get("/api/v1/users", headers=h)).json()["users"]
    assert [(u["username"], u["role"]) for u in listed] == [("ann", "viewer")]
    assert "password_hash" not in listed[0]
    missing = await client.patch("/api/v1/users/nobody", json={"role": "viewer"}, headers=h)
    assert missing.status_code == 404


async def test_admin_manages_tokens(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    h = bearer(tokens["admin"])
    r = await client.post("/api/v1/tokens", json={"name": "ci", "role": "operator"}, headers=h)
    assert r.status_code == 201
    new = r.json()
    assert new["token"].startswith("vq_")
    me = (await client.get("/api/v1/me", headers=bearer(new["token"]))).json()
    assert me == {"username": "ci", "role": "operator", "via": "token"}
    listed = (await client.get("/api/v1/tokens", headers=h)).json()["tokens"]
    assert {t["name"] for t in listed} == {"t-admin", "t-operator", "t-viewer", "ci"}
    assert all("token" not in t and "token_hash" not in t for t in listed)
    revoked = await client.delete(f"/api/v1/tokens/{new['id']}", headers=h)
    assert revoked.json()["revoked"] is True
    assert (await client.get("/api/v1/me", headers=bearer(new["token"]))).status_code == 401
    assert (await client.delete(f"/api/v1/tokens/{new['id']}", headers=h)).status_code == 404
    huge = await client.delete(f"/api/v1/tokens/{2**70}", headers=h)
    assert huge.status_code == 422


# -- the rest of the app ------------------------------------------------------------


async def test_openapi_document_lists_the_routes(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/api/v1/openapi.json")).json()
    assert {"/api/v1/jobs", "/api/v1/jobs/{job_id}", "/api/v1/readyz", "/api/v1/metrics"} <= set(
        doc["paths"]
    )
    assert "/login" not in doc["paths"]


async def test_media_is_served_with_range_support(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    video = settings.resolved_media_dir / "clip.mp4"
    video.write_bytes(bytes(range(256)) * 4)
    full = await client.get("/media/clip.mp4")
    assert full.status_code == 200 and len(full.content) == 1024
    assert full.headers["accept-ranges"] == "bytes"
    part = await client.get("/media/clip.mp4", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.headers["content-range"] == "bytes 10-19/1024"
    assert part.content == bytes(range(10, 20))
    assert (await client.get("/media/nothing.mp4")).status_code == 404


async def test_root_and_admin_lead_to_the_queue_page(client: httpx.AsyncClient) -> None:
    for path in ("/", "/admin"):
        r = await client.get(path)
        assert r.status_code == 307 and r.headers["location"] == "/queue"


def test_media_dir_is_created(settings: Settings, tmp_path: Path) -> None:
    custom = settings.model_copy(update={"media_dir": tmp_path / "deep" / "media"})
    create_app(custom, None, admin_page=False)  # type: ignore[arg-type]
    assert (tmp_path / "deep" / "media").is_dir()
