"""Completion callbacks over a real database and real loopback HTTP: the outbox row is
written with the state change, one signed POST per final state, retries with backoff,
the origin guard at submission and at delivery, the job's details and the redelivery
(``vq_core/worker/callbacks.py``, ``vq_core/store/callbacks.py``, migration 0012)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from support.helpers import ScriptedService, eventually, running_worker

from vq_core.cli.main import cli
from vq_core.config import CallbackSettings, Settings
from vq_core.errors import ServiceError, error_record
from vq_core.models import Actor, ErrorCategory, JobStatus, NewJob
from vq_core.store import Store
from vq_core.validation import QueueConfigPatch
from vq_core.worker.callbacks import CallbackDeliverer

pytest_plugins = ["support.api"]  # app, client, tokens
SECRET = "s3cret-for-tests"
JOBS = "/api/v1/jobs"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class CallbackReceiver:
    """A loopback HTTP server recording every POST; it answers ``statuses`` in turn,
    then ``status`` (after ``hold`` is set, if there is one)."""

    statuses: list[int] = field(default_factory=list)
    status: int = 200
    hold: asyncio.Event | None = None
    redirect_to: str | None = None
    received: list[Received] = field(default_factory=list)
    url: str = ""
    origin: str = ""
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.origin = f"http://127.0.0.1:{port}"
        self.url = f"{self.origin}/hooks/vq"

    async def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(headers, body))
            if self.hold is not None:
                await self.hold.wait()
            status = self.statuses.pop(0) if self.statuses else self.status
            extra = f"Location: {self.redirect_to}\r\n" if self.redirect_to else ""
            writer.write(
                f"HTTP/1.1 {status} X\r\n{extra}Content-Length: 2\r\n"
                "Connection: close\r\n\r\nok".encode()
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    r = CallbackReceiver()
    await r.start()
    yield r
    await r.close()


@pytest.fixture
def settings(settings: Settings, receiver: CallbackReceiver) -> Settings:
    """The suite's fast settings, with callbacks allowed to the receiver only."""
    callbacks = CallbackSettings(
        secret=SECRET,
        allowed_origins=[receiver.origin],
        backoff=0.05,
        max_backoff=0.2,
        max_attempts=5,
        timeout=2,
        interval=0.5,
    )
    return settings.model_copy(update={"callbacks": callbacks})


def verify_signature(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """docs/platform.md's Python example, as a receiver would write it."""
    timestamp = headers["x-vq-timestamp"]
    expected = (
        "sha256="
        + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    )
    fresh = abs(time.time() - int(timestamp)) < 300
    return fresh and hmac.compare_digest(expected, headers["x-vq-signature"])


def docs_python_example() -> str:
    """The Python verification example of docs/platform.md, as written there."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "platform.md").read_text()
    section = text[text.index("## Completion callbacks") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```", start)]


@contextlib.asynccontextmanager
async def deliverer(store: Store, settings: Settings, name: str = "d1") -> AsyncIterator[None]:
    d = CallbackDeliverer(store, settings.callbacks, name)
    d.start()
    try:
        yield
    finally:
        await d.close(5)


async def finished(store: Store, callback_url: str, outcome: str) -> uuid.UUID:
    """A job with a callback that ends ``completed``, ``failed`` or ``cancelled`` the way
    the worker and the operator end jobs (the store's own statements)."""
    job = await store.enqueue(NewJob("cb", {"n": outcome}, callback_url=callback_url))
    if outcome == "cancelled":
        await store.cancel(job.id, actor=Actor("ops", "cli"))
        return job.id
    claimed = await store.claim("w-test", {"cb": "scripted"}, 10, 30)
    assert [c.id for c in claimed] == [job.id]
    if outcome == "completed":
        result = {"video_url": "http://127.0.0.1:1/v.mp4", "duration": 3}
        assert await store.complete_many("w-test", [(job.id, result)]) == [job.id]
    else:
        err = error_record(
            ServiceError(ErrorCategory.TIMEOUT, "render took too long"),
            ErrorCategory.TIMEOUT,
            1,
            False,
        )
        assert await store.fail("w-test", job.id, err, None) is JobStatus.FAILED
    return job.id


async def test_the_outbox_row_is_written_with_the_state_change_and_only_then(
    store: Store, receiver: CallbackReceiver
) -> None:
    with_url = await store.enqueue(NewJob("cb", callback_url=receiver.url))
    without = await store.enqueue(NewJob("cb"))
    claimed = await store.claim("w-test", {"cb": "scripted"}, 10, 30)
    assert {c.id for c in claimed} == {with_url.id, without.id}
    count = "SELECT count(*) FROM vq.callback_deliveries"
    assert await store.pool.fetchval(count) == 0  # running is not final
    # A transaction that completes the job and rolls back leaves no delivery either.
    async with store.pool.acquire() as conn:
        tr = conn.transaction()
        await tr.start()
        await conn.execute("UPDATE vq.jobs SET status = 'completed' WHERE id = $1", with_url.id)
        assert await conn.fetchval(count) == 1
        await tr.rollback()
    assert await store.pool.fetchval(count) == 0
    await store.complete_many("w-test", [(with_url.id, {}), (without.id, {})])
    rows = await store.pool.fetch("SELECT job_id, state, attempts FROM vq.callback_deliveries")
    assert [tuple(r) for r in rows] == [(with_url.id, "pending", 0)]


async def test_each_final_state_delivers_exactly_one_signed_callback(
    store: Store, settings: Settings, receiver: CallbackReceiver
) -> None:
    ids = {o: await finished(store, receiver.url, o) for o in ("completed", "failed", "cancelled")}
    async with deliverer(store, settings), deliverer(store, settings, "d2"):

        async def all_delivered() -> bool:
            states = await store.pool.fetch("SELECT state FROM vq.callback_deliveries")
            return len(states) == 3 and all(r["state"] == "delivered" for r in states)

        await eventually(all_delivered)
    # Two deliverers competed: still exactly one POST per final state.
    assert len(receiver.received) == 3
    by_status = {r.json()["status"]: r for r in receiver.received}
    assert set(by_status) == {"completed", "failed", "cancelled"}
    for status, got in by_status.items():
        assert verify_signature(SECRET, got.headers, got.body)
        assert not verify_signature("another-secret", got.headers, got.body)
        body = got.json()
        assert body["id"] == str(ids[status])
        assert body["job_type"] == "cb"
        assert body["finished_at"]
        delivery = uuid.UUID(got.headers["x-vq-delivery"])
        [stored] = await store.job_callbacks(ids[status])
        assert stored.id == delivery and stored.state == "delivered"
        assert [(a.attempt, a.outcome, a.status_code) for a in stored.attempt_log] == [
            (1, "delivered", 200)
        ]
    done = by_status["completed"].json()
    assert done["result"] == {"video_url": "http://127.0.0.1:1/v.mp4", "duration": 3}
    assert done["video_url"] == "http://127.0.0.1:1/v.mp4"
    assert done["error"] is None
    assert by_status["failed"].json()["error"] == {
        "category": "TIMEOUT",
        "message": "render took too long",
    }
    assert by_status["cancelled"].json()["result"] is None


async def test_the_python_example_of_the_docs_verifies_a_real_callback(
    store: Store, settings: Settings, receiver: CallbackReceiver
) -> None:
    await finished(store, receiver.url, "completed")
    async with deliverer(store, settings):
        await eventually(lambda: asyncio.sleep(0, result=receiver.received))
    got = receiver.received[0]
    namespace: dict[str, Any] = {}
    exec(docs_python_example(), namespace)  # our own documentation's code
    verify = namespace["verify"]
    assert verify(SECRET, got.headers["x-vq-timestamp"], got.headers["x-vq-signature"], got.body)
    assert not verify(
        SECRET, got.headers["x-vq-timestamp"], got.headers["x-vq-signature"], got.body + b" "
    )
    stale = str(int(got.headers["x-vq-timestamp"]) - 3600)
    assert not verify(SECRET, stale, got.headers["x-vq-signature"], got.body)


async def test_500_three_times_then_200_is_delivered_on_the_fourth_attempt(
    store: Store, settings: Settings, receiver: CallbackReceiver
) -> None:
    receiver.statuses = [500, 500, 500]
    job_id = await finished(store, receiver.url, "completed")
    async with deliverer(store, settings):

        async def delivered() -> bool:
            return (await store.job_callbacks(job_id))[0].state == "delivered"

        await eventually(delivered)
    [d] = await store.job_callbacks(job_id)
    assert d.attempts == 4
    assert [(a.attempt, a.outcome, a.status_code) for a in d.attempt_log] == [
        (1, "retried", 500),
        (2, "retried", 500),
        (3, "retried", 500),
        (4, "delivered", 200),
    ]
    assert len(receiver.received) == 4
    # The same delivery each time (one id to de-duplicate by), each attempt signed anew.
    assert len({r.headers["x-vq-delivery"] for r in receiver.received}) == 1
    assert all(verify_signature(SECRET, r.headers, r.body) for r in receiver.received)
    assert len({r.body for r in receiver.received}) == 1


async def test_a_receiver_that_never_accepts_fails_after_max_attempts(
    store: Store, settings: Settings, receiver: CallbackReceiver
) -> None:
    receiver.status = 503
    job_id = await finished(store, receiver.url, "failed")
    async with deliverer(store, settings):

        async def failed() -> bool:
            return (await store.job_callbacks(job_id))[0].state == "failed"

        await eventually(failed)
    [d] = await store.job_callbacks(job_id)
    assert d.attempts == settings.callbacks.max_attempts == len(receiver.received)
    assert [a.outcome for a in d.attempt_log] == ["retried"] * 4 + ["failed"]
    assert d.last_error == "HTTP 503: ok"


async def test_a_redirect_is_not_followed(
    store: Store, settings: Settings, receiver: CallbackReceiver
) -> None:
    receiver.status = 307
    receiver.redirect_to = "http://127.0.0.1:9/elsewhere"
    settings.callbacks.max_attempts = 1
    job_id = await finished(store, receiver.url, "completed")
    async with deliverer(store, settings):

        async def failed() -> bool:
            return (await store.job_callbacks(job_id))[0].state == "failed"

        await eventually(failed)
    [d] = await store.job_callbacks(job_id)
    assert d.attempt_log[0].status_code == 307
    assert "redirects are not followed" in (d.last_error or "")
    assert len(receiver.received) == 1


async def test_a_row_written_by_sql_to_a_disallowed_origin_fails_without_a_request(
    store: Store, settings: Settings, receiver: CallbackReceiver
) -> None:
    other = CallbackReceiver()
    await other.start()
    try:
        job_id = await finished(store, other.url, "completed")
        async with deliverer(store, settings):

            async def failed() -> bool:
                return (await store.job_callbacks(job_id))[0].state == "failed"

            await eventually(failed)
        [d] = await store.job_callbacks(job_id)
        assert d.attempts == 1
        assert f"{other.origin} is not an allowed callback origin" in (d.last_error or "")
        assert "callbacks.allowed_origins" in (d.last_error or "")
        assert other.received == []
    finally:
        await other.close()


async def test_a_bad_receiver_does_not_stop_the_worker_which_delivers_on_its_own(
    store: Store, settings: Settings, receiver: CallbackReceiver, dsn: str
) -> None:
    """The full path in a real worker: the job completes, the worker's deliverer sends
    the callback (woken by NOTIFY), a refused connection is only a retried attempt."""
    service = ScriptedService(job_types=("cb",))
    closed = CallbackReceiver()
    await closed.start()
    dead_url = closed.url
    await closed.close()  # nothing listens there any more
    settings.callbacks.allowed_origins.append(closed.origin)
    settings.callbacks.max_attempts = 2
    async with running_worker(store, settings, {"scripted": service}, dsn) as worker:
        bad = await store.enqueue(NewJob("cb", {"n": 1}, callback_url=dead_url))
        good = await store.enqueue(NewJob("cb", {"n": 2}, callback_url=receiver.url))

        async def both_settled() -> bool:
            states = [d.state for jid in (bad.id, good.id) for d in await store.job_callbacks(jid)]
            return states == ["failed", "delivered"]

        await eventually(both_settled)
        assert not worker.stopping
        [d] = await store.job_callbacks(bad.id)
        assert [a.outcome for a in d.attempt_log] == ["retried", "failed"]
        assert "ConnectError" in (d.last_error or "")
        assert {a.worker_id for a in d.attempt_log} == {worker.id}
    assert [r.json()["id"] for r in receiver.received] == [str(good.id)]


async def test_the_types_default_callback_url_is_copied_in_at_submission(
    store: Store, receiver: CallbackReceiver
) -> None:
    actor = Actor("ops", "cli")
    await store.update_queue_config("cb", QueueConfigPatch(callback_url=receiver.url), actor, 60)
    assert (await store.list_queue_config())["cb"].callback_url == receiver.url
    own = "http://127.0.0.1:1/own"
    a = await store.enqueue(NewJob("cb"))
    b = await store.enqueue(NewJob("cb", callback_url=own))
    c = await store.enqueue(NewJob("cb", idempotency_key="k1"))
    d = await store.enqueue(NewJob("other"))
    assert (await store.get_job(a.id)).callback_url == receiver.url
    assert (await store.get_job(b.id)).callback_url == own
    assert (await store.get_job(c.id)).callback_url == receiver.url
    assert (await store.get_job(d.id)).callback_url is None
    # A later change of the default does not redirect the jobs already queued.
    await store.update_queue_config("cb", QueueConfigPatch(callback_url=None), actor, 60)
    assert (await store.get_job(a.id)).callback_url == receiver.url
    assert (await store.get_job((await store.enqueue(NewJob("cb"))).id)).callback_url is None


# -- the API and the CLI ------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_disallowed_callback_host_is_refused_at_submission(
    client: httpx.AsyncClient, tokens: dict[str, str], store: Store, receiver: CallbackReceiver
) -> None:
    h = bearer(tokens["operator"])
    other_scheme = receiver.url.replace("http://", "https://")
    for url in ("http://127.0.0.2:8080/hook", other_scheme):
        r = await client.post(JOBS, json={"job_type": "cb", "callback_url": url}, headers=h)
        assert r.status_code in (400, 422), r.text
        assert "callback_url" in r.text and "not an allowed callback origin" in r.text
    r = await client.post(JOBS, json={"job_type": "cb", "callback_url": "ftp://x/y"}, headers=h)
    assert r.status_code in (400, 422) and "callback_url" in r.text
    batch = [{"job_type": "cb"}, {"job_type": "cb", "callback_url": "http://127.0.0.3:1/"}]
    r = await client.post(JOBS, json=batch, headers=h)
    assert r.status_code in (400, 422) and "1.callback_url" in r.text
    assert await store.pool.fetchval("SELECT count(*) FROM vq.jobs") == 0
    r = await client.post(JOBS, json={"job_type": "cb", "callback_url": receiver.url}, headers=h)
    assert r.status_code == 201, r.text
    assert (await store.get_job(uuid.UUID(r.json()["id"]))).callback_url == receiver.url
    # A type's default is held to the same rule.
    r = await client.patch(
        "/api/v1/types/cb", json={"callback_url": "http://127.0.0.2:1/"}, headers=h
    )
    assert r.status_code in (400, 422) and "callback_url" in r.text
    r = await client.patch("/api/v1/types/cb", json={"callback_url": receiver.url}, headers=h)
    assert r.status_code == 200 and r.json()["settings"]["callback_url"] == receiver.url


def test_the_cli_refuses_a_disallowed_callback_url_with_exit_2(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VQ_DATABASE_URL", dsn)
    monkeypatch.setenv("VQ_CALLBACKS__ALLOWED_ORIGINS", '["http://127.0.0.1:9999"]')
    runner = CliRunner()
    bad = runner.invoke(cli, ["submit", "cb", "--callback-url", "http://127.0.0.2:9999/h"])
    assert bad.exit_code == 2, bad.output
    assert "--callback-url" in bad.output and "not an allowed callback origin" in bad.output
    ok = runner.invoke(cli, ["submit", "cb", "--callback-url", "http://127.0.0.1:9999/h", "--json"])
    assert ok.exit_code == 0, ok.output
    bad_type = runner.invoke(cli, ["types", "set", "cb", "--callback-url", "http://127.0.0.2:1/"])
    assert bad_type.exit_code == 2 and "callback_url" in bad_type.output


async def test_the_job_shows_its_callbacks_and_an_admin_may_redeliver(
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    store: Store,
    settings: Settings,
    receiver: CallbackReceiver,
    dsn: str,
) -> None:
    job_id = await finished(store, receiver.url, "completed")
    # A real worker: the redelivery wakes its deliverer through NOTIFY vq_callbacks.
    service = ScriptedService(job_types=("cb",))
    async with running_worker(store, settings, {"scripted": service}, dsn):

        async def delivered() -> bool:
            return (await store.job_callbacks(job_id))[0].state == "delivered"

        await eventually(delivered)
        r = await client.get(f"{JOBS}/{job_id}", headers=bearer(tokens["viewer"]))
        assert r.status_code == 200
        [shown] = r.json()["callbacks"]
        assert shown["state"] == "delivered" and shown["url"] == receiver.url
        assert [a["outcome"] for a in shown["attempt_log"]] == ["delivered"]
        url = f"{JOBS}/{job_id}/callbacks/{shown['id']}/redeliver"
        for role in ("viewer", "operator"):
            refused = await client.post(url, headers=bearer(tokens[role]))
            assert refused.status_code == 403, refused.text
        assert (await client.post(url)).status_code == 401
        missing = f"{JOBS}/{job_id}/callbacks/{uuid.uuid4()}/redeliver"
        assert (await client.post(missing, headers=bearer(tokens["admin"]))).status_code == 404
        assert len(receiver.received) == 1
        r = await client.post(url, headers=bearer(tokens["admin"]))
        assert r.status_code == 200, r.text
        assert r.json()["id"] == shown["id"]

        async def sent_again() -> bool:
            d = (await store.job_callbacks(job_id))[0]
            return len(receiver.received) == 2 and d.state == "delivered"

        await eventually(sent_again)
    first, second = receiver.received
    assert first.headers["x-vq-delivery"] == second.headers["x-vq-delivery"] == shown["id"]
    assert first.body == second.body
    [d] = await store.job_callbacks(job_id)
    assert [(a.outcome, a.attempt) for a in d.attempt_log] == [
        ("delivered", 1),
        ("redelivered", 1),
        ("delivered", 1),
    ]
    assert d.attempt_log[1].detail == "redelivery requested by token:t-admin via api"
