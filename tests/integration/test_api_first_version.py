"""``POST /api/v1/jobs`` takes the job document of the queue's first version as the
platform sends it (docs/platform.md, "The job document of the first version"): a
``status`` of ``queued`` (and ``retry_count: 0``, ``error_message: null``) changes
nothing; any other value is a 422 naming the field."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytest_plugins = ["support.api"]  # app, client, tokens

JOBS = "/api/v1/jobs"
FIRST_VERSION = {
    "job_type": "doubt",
    "priority": "high",
    "status": "queued",
    "payload": {"question": "Why is the sky blue?"},
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def submit(client: httpx.AsyncClient, token: str, body: Any) -> httpx.Response:
    return await client.post(JOBS, json=body, headers=bearer(token))


async def test_the_first_versions_document_is_a_job(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    r = await submit(client, tokens["operator"], FIRST_VERSION)
    assert r.status_code == 201, r.text
    job = (await client.get(r.headers["location"], headers=bearer(tokens["viewer"]))).json()
    assert (job["job_type"], job["priority"], job["status"]) == ("doubt", "high", "queued")
    assert job["payload"] == {"question": "Why is the sky blue?"}
    assert job["retry_count"] == 0 and job["error"] is None
    assert [e["event"] for e in job["events"]] == ["created"]


async def test_the_first_versions_bookkeeping_fields_are_accepted_when_they_say_new(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    body = {**FIRST_VERSION, "retry_count": 0, "max_retries": 5, "error_message": None}
    r = await submit(client, tokens["operator"], body)
    assert r.status_code == 201, r.text
    job = (await client.get(r.headers["location"], headers=bearer(tokens["viewer"]))).json()
    assert job["max_retries"] == 5 and job["retry_count"] == 0 and job["status"] == "queued"


async def test_a_batch_of_first_version_documents(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    body = [
        {**FIRST_VERSION, "payload": {"question": f"q{i}"}, "priority": p}
        for i, p in enumerate(("urgent", "high", "normal", "low"))
    ]
    body.append({"job_type": "doubt"})  # the current document, in the same batch
    r = await submit(client, tokens["operator"], body)
    assert r.status_code == 201, r.text
    assert len({j["id"] for j in r.json()["jobs"]}) == 5
    listed = (await client.get(JOBS, headers=bearer(tokens["viewer"]))).json()["jobs"]
    assert sorted(j["priority"] for j in listed) == sorted(
        ["urgent", "high", "normal", "low", "normal"]
    )
    assert {j["status"] for j in listed} == {"queued"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "running"}, "status: a submitted job is always queued"),
        ({"status": "completed"}, "status:"),
        ({"status": "failed"}, "status:"),
        ({"status": "cancelled"}, "status:"),
        ({"status": "pending"}, "status:"),
        ({"status": "QUEUED"}, "status:"),
        ({"status": ""}, "status:"),
        ({"status": 1}, "status:"),
        ({"retry_count": 2}, "retry_count: a submitted job has made no attempts"),
        ({"retry_count": False}, "retry_count:"),
        ({"error_message": "boom"}, "error_message: a submitted job has no error"),
        ({"id": 7}, "id: Extra inputs are not permitted"),
        ({"result": {"video_url": "x"}}, "result: Extra inputs"),
    ],
)
async def test_anything_else_is_a_422_naming_the_field(
    client: httpx.AsyncClient, tokens: dict[str, str], change: dict[str, Any], field: str
) -> None:
    r = await submit(client, tokens["operator"], {**FIRST_VERSION, **change})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(field), r.json()["detail"]
    listed = (await client.get(JOBS, headers=bearer(tokens["viewer"]))).json()["jobs"]
    assert listed == []


async def test_a_batch_item_with_another_status_is_named(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    body = [FIRST_VERSION, {**FIRST_VERSION, "status": "completed"}]
    r = await submit(client, tokens["operator"], body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail.startswith("1.status: a submitted job is always queued"), detail
    assert 'got "completed"' in detail
    listed = (await client.get(JOBS, headers=bearer(tokens["viewer"]))).json()["jobs"]
    assert listed == []


async def test_the_openapi_document_shows_the_accepted_status(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    r = await client.get("/api/v1/openapi.json", headers=bearer(tokens["viewer"]))
    assert r.status_code == 200, r.text
    fields = r.json()["components"]["schemas"]["JobRequest"]["properties"]
    assert {"const": "queued", "type": "string"} in fields["status"]["anyOf"]
    assert "only 'queued'" in fields["status"]["description"]
