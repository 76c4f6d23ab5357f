"""The edge of every request (vq_ui/http_guard.py): credentials before the body, the body
size cap, the security headers, and the API docs page served from a package."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from vq_core.config import Settings
from vq_core.store import Store
from vq_core.validation import MAX_PAYLOAD_BYTES
from vq_ui.api.jobs import MAX_BATCH
from vq_ui.app import create_app
from vq_ui.auth import users
from vq_ui.http_guard import CONTENT_SECURITY_POLICY, DEFAULT_MAX_BODY_BYTES, HttpConfig

pytest_plugins = ["support.api"]  # app, client, tokens
BASE = "http://127.0.0.1:8080"
JOBS = "/api/v1/jobs"
MB = 1024 * 1024
CHUNK = 64 * 1024
TOO_LARGE = f"body: larger than max_body_bytes ({DEFAULT_MAX_BODY_BYTES} bytes)"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Body:
    """A request body streamed in chunks, counting how many bytes the server pulled."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            chunk = b" " * min(CHUNK, self.total - self.sent)
            self.sent += len(chunk)
            yield chunk


# -- credentials before the body ----------------------------------------------------


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_50_mb_post_without_credentials_gets_401_unread(
    client: httpx.AsyncClient, declared: bool
) -> None:
    body = Body(50 * MB)
    headers = {"Content-Type": "application/json"}
    if declared:
        headers["Content-Length"] = str(body.total)
    r = await client.post(JOBS, content=body, headers=headers)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["detail"].startswith("authentication required")
    assert body.sent == 0


async def test_a_wrong_token_is_refused_before_the_body(client: httpx.AsyncClient) -> None:
    body = Body(2 * MB)
    r = await client.post(JOBS, content=body, headers=bearer("vq_not-a-token"))
    assert r.status_code == 401
    assert body.sent == 0


async def test_a_cross_site_cookie_write_is_refused_before_the_body(
    client: httpx.AsyncClient, store: Store
) -> None:
    await users.create_user(store, "ann", "correct horse battery", "operator")
    signed_in = await client.post(
        "/login", data={"username": "ann", "password": "correct horse battery"}
    )
    assert signed_in.status_code == 303
    body = Body(2 * MB)
    r = await client.post(JOBS, content=body, headers={"Origin": "http://127.0.0.2:8080"})
    assert r.status_code == 403
    assert r.json() == {"detail": "cross-site request refused"}
    assert body.sent == 0


# -- the body cap -------------------------------------------------------------------


async def test_an_oversize_body_with_credentials_gets_413_unread(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    body = Body(DEFAULT_MAX_BODY_BYTES + 1)
    headers = {**bearer(tokens["operator"]), "Content-Length": str(body.total)}
    r = await client.post(JOBS, content=body, headers=headers)
    assert r.status_code == 413
    assert r.json() == {"detail": TOO_LARGE}
    assert body.sent == 0


async def test_an_oversize_chunked_body_gets_413_once_it_passes_the_cap(
    client: httpx.AsyncClient, tokens: dict[str, str], store: Store
) -> None:
    body = Body(50 * MB)
    r = await client.post(JOBS, content=body, headers=bearer(tokens["operator"]))
    assert r.status_code == 413
    assert r.json() == {"detail": TOO_LARGE}
    assert DEFAULT_MAX_BODY_BYTES < body.sent <= DEFAULT_MAX_BODY_BYTES + CHUNK
    assert await store.pool.fetchval("SELECT count(*) FROM vq.jobs") == 0


async def test_the_sign_in_form_is_capped_too(client: httpx.AsyncClient) -> None:
    body = Body(5 * MB)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    r = await client.post("/login", content=body, headers=headers)
    assert r.status_code == 413
    assert body.sent <= DEFAULT_MAX_BODY_BYTES + CHUNK


async def test_the_batch_limit_still_answers_below_the_cap(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    """The cap is far above what a batch of the largest allowed count of jobs takes, so
    an over-long batch still gets the batch's own 400, and a job with the largest
    allowed payload fits."""
    over = [{"job_type": "doubt", "payload": {"question": f"q{i}"}} for i in range(MAX_BATCH + 1)]
    assert len(httpx.Request("POST", BASE, json=over).content) < DEFAULT_MAX_BODY_BYTES
    r = await client.post(JOBS, json=over, headers=bearer(tokens["operator"]))
    assert r.status_code == 400
    assert r.json()["detail"] == f"body: send between 1 and {MAX_BATCH} jobs"

    largest = {"job_type": "doubt", "payload": {"question": "x" * (MAX_PAYLOAD_BYTES - 20)}}
    r = await client.post(JOBS, json=largest, headers=bearer(tokens["operator"]))
    assert r.status_code == 201, r.text


async def test_max_body_bytes_is_a_setting(
    settings: Settings, store: Store, tokens: dict[str, str]
) -> None:
    small = settings.model_copy(update={"plugin_config": {"ui": {"max_body_bytes": 4096}}})
    app = create_app(small, store, admin_page=False)
    job = {"job_type": "doubt", "payload": {"question": "x" * 5000}}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        r = await c.post(JOBS, json=job, headers=bearer(tokens["operator"]))
        assert r.status_code == 413
        assert r.json() == {"detail": "body: larger than max_body_bytes (4096 bytes)"}
        job["payload"] = {"question": "x" * 3000}
        r = await c.post(JOBS, json=job, headers=bearer(tokens["operator"]))
        assert r.status_code == 201


@pytest.mark.parametrize("value", [0, 100, "lots"])
def test_a_bad_max_body_bytes_names_the_setting(settings: Settings, value: Any) -> None:
    bad = settings.model_copy(update={"plugin_config": {"ui": {"max_body_bytes": value}}})
    with pytest.raises(ValueError, match=r"^plugin_config\.ui: max_body_bytes: "):
        HttpConfig.from_settings(bad)


# -- headers ------------------------------------------------------------------------

SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def assert_security_headers(r: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, (r.request.url, name, r.headers)
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


async def test_every_answer_carries_the_security_headers(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    answers = [
        await client.get("/login"),
        await client.get("/api/v1/healthz"),
        await client.get(JOBS),
        await client.get(JOBS, headers=bearer(tokens["viewer"])),
        await client.post(JOBS, json={"job_type": "?"}, headers=bearer(tokens["operator"])),
        await client.post(JOBS, content=Body(2 * MB), headers=bearer(tokens["operator"])),
        await client.get("/api/v1/openapi.json"),
        await client.get("/api/v1/docs"),
        await client.get("/media/none.mp4"),
        await client.get("/"),
    ]
    assert [r.status_code for r in answers] == [200, 200, 401, 200, 422, 413, 200, 200, 404, 307]
    for r in answers:
        assert_security_headers(r)


# -- the API docs page --------------------------------------------------------------


async def test_the_docs_page_loads_only_this_origin(client: httpx.AsyncClient) -> None:
    page = await client.get("/api/v1/docs")
    assert page.status_code == 200
    assert "://" not in page.text, "the docs page names another origin"
    refs = re.findall(r"""(?:src|href)="([^"]+)"|url: '([^']+)'""", page.text)
    urls = {a or b for a, b in refs}
    assert {
        "/api/v1/docs/assets/swagger-ui-bundle.js",
        "/api/v1/docs/assets/swagger-ui.css",
        "/api/v1/openapi.json",
    } <= urls
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        r = await client.get(url)
        assert r.status_code == 200, url
        assert int(r.headers["content-length"]) > 0
    assert '"validatorUrl": null' in page.text  # nothing sent to Swagger's online validator
