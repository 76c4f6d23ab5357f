"""What the API shows to whom: stack traces for admins only, and cursor errors that
echo nothing of Python's."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import pytest

from vq_core.errors import ServiceError, error_record
from vq_core.models import ErrorCategory, NewJob
from vq_core.store import Store

pytest_plugins = ["support.api"]  # app, client, tokens
JOBS = "/api/v1/jobs"
WORKER = "w-shown"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _record() -> dict[str, object]:
    try:
        raise ServiceError(
            ErrorCategory.API_ERROR,
            "orchestrator: POST /render answered 503",
            service="orchestrator",
            status_code=503,
        )
    except ServiceError as exc:
        return error_record(exc, ErrorCategory.API_ERROR, attempt=1, retryable=True)


@pytest.fixture
async def failed_job(store: Store) -> uuid.UUID:
    """A job that failed twice: a retried attempt, then for good, each with a stack."""
    [answer] = await store.enqueue_many([NewJob("doubt", {"question": "q"}, max_retries=1)])
    await store.register_worker(WORKER, "host", 1, 1, ["doubt"], 60)
    for retry_in in (0.0, None):
        [claimed] = await store.claim(WORKER, {"doubt": "noop"}, 1, 60)
        await store.fail(WORKER, claimed.id, _record(), retry_in)
    job = await store.get_job(answer.id)
    assert job.error is not None and "Traceback" in job.error["stack"]
    return answer.id


def _stacks(document: object) -> list[str]:
    """Every ``stack`` value anywhere in a JSON document."""
    found: list[str] = []
    if isinstance(document, dict):
        found += [str(v) for k, v in document.items() if k == "stack"]
        for value in document.values():
            found += _stacks(value)
    elif isinstance(document, list):
        for value in document:
            found += _stacks(value)
    return found


@pytest.mark.parametrize("role", ["viewer", "operator"])
async def test_viewers_and_operators_get_the_error_without_its_stack(
    client: httpx.AsyncClient, tokens: dict[str, str], failed_job: uuid.UUID, role: str
) -> None:
    job = (await client.get(f"{JOBS}/{failed_job}", headers=bearer(tokens[role]))).json()
    assert job["status"] == "failed"
    assert job["error"]["message"] == "orchestrator: POST /render answered 503"
    assert job["error"]["type"] == "API_ERROR" and job["error"]["status_code"] == 503
    failures = [e for e in job["events"] if e["event"] in ("retry_scheduled", "failed")]
    assert len(failures) == 2
    assert all(e["details"]["type"] == "API_ERROR" for e in failures)
    assert _stacks(job) == []
    listed = (await client.get(JOBS, headers=bearer(tokens[role]))).json()
    assert listed["jobs"][0]["error"]["message"] == job["error"]["message"]
    assert _stacks(listed) == []
    if role == "operator":
        retried = await client.post(f"{JOBS}/{failed_job}/retry", headers=bearer(tokens[role]))
        assert retried.status_code == 200
        assert _stacks(retried.json()) == []


async def test_admins_get_the_stacks(
    client: httpx.AsyncClient, tokens: dict[str, str], failed_job: uuid.UUID
) -> None:
    job = (await client.get(f"{JOBS}/{failed_job}", headers=bearer(tokens["admin"]))).json()
    stacks = _stacks(job)
    assert len(stacks) == 3  # the job's error and its two failed attempts
    assert all(s.startswith("Traceback") and "ServiceError" in s for s in stacks)
    listed = (await client.get(JOBS, headers=bearer(tokens["admin"]))).json()
    assert len(_stacks(listed)) == 1


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        "%%%",
        _cursor("[1, 2]"),  # an id that is not a string: used to be a 500
        _cursor('[1, {"a": 1}]'),
        _cursor('["x", "not-a-uuid"]'),
        _cursor("null"),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
async def test_a_bad_cursor_gets_a_fixed_message(
    client: httpx.AsyncClient, tokens: dict[str, str], cursor: str
) -> None:
    r = await client.get(JOBS, params={"cursor": cursor}, headers=bearer(tokens["viewer"]))
    assert r.status_code == 400
    assert r.json() == {"detail": "cursor: not a cursor this server issued"}


async def test_a_real_cursor_still_pages(
    client: httpx.AsyncClient, tokens: dict[str, str], store: Store
) -> None:
    await store.enqueue_many([NewJob("doubt", {"question": f"q{i}"}) for i in range(3)])
    h = bearer(tokens["viewer"])
    first = (await client.get(JOBS, params={"limit": "2"}, headers=h)).json()
    value, job_id = json.loads(base64.urlsafe_b64decode(first["next_cursor"]))
    assert uuid.UUID(job_id) and value
    second = await client.get(
        JOBS, params={"limit": "2", "cursor": first["next_cursor"]}, headers=h
    )
    assert second.status_code == 200 and len(second.json()["jobs"]) == 1
