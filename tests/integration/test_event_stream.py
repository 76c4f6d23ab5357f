"""The live event stream over real HTTP: uvicorn on a loopback port, httpx streaming, a
real worker rendering with a service that reports progress, and the hub's gap rule
against real concurrent transactions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from support.helpers import eventually, running_worker

from vq_core import db
from vq_core.config import Settings
from vq_core.event_hub import EventHub
from vq_core.models import ClaimedJob, NewJob
from vq_core.store import Store
from vq_core.video_service import ProgressCallback
from vq_ui.api import event_stream
from vq_ui.app import create_app

pytest_plugins = ["support.api"]  # cheap argon2, tokens per role


class StagedService:
    """Renders in three reported stages, each held until the test opens its gate."""

    name = "staged"
    job_types = ("staged",)
    STAGES = (("prepare", 10.0), ("render", 50.0), ("encode", 90.0))

    def __init__(self) -> None:
        self.gates = {stage: asyncio.Event() for stage, _ in self.STAGES}
        self.reached: dict[str, asyncio.Event] = {s: asyncio.Event() for s, _ in self.STAGES}

    async def render(self, job: ClaimedJob, progress: ProgressCallback) -> dict[str, Any]:
        for stage, percent in self.STAGES:
            await progress(percent, stage)
            self.reached[stage].set()
            await self.gates[stage].wait()
        return {"ok": True}

    def open_all(self) -> None:
        for gate in self.gates.values():
            gate.set()

    async def health(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


@dataclass
class Served:
    url: str
    app: FastAPI

    @property
    def hub(self) -> EventHub:
        return event_stream.hub_of(self.app)


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: pytest keeps Ctrl-C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@pytest.fixture
async def served(settings: Settings, store: Store) -> AsyncIterator[Served]:
    """The app in uvicorn on 127.0.0.1 (a free port), on this test's event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    app = create_app(settings, store, admin_page=False)
    server = _Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await eventually(lambda: _true(server.started), timeout=15)
    try:
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", app)
    finally:
        await event_stream.hub_of(app).close()
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


async def _true(value: bool) -> bool:
    return value


@dataclass
class Sse:
    id: int
    event: str
    data: dict[str, Any]


async def read_events(response: httpx.Response) -> AsyncIterator[Sse]:
    """Parse a text/event-stream as it arrives (comments and retry: skipped)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                yield Sse(int(fields["id"]), fields["event"], json.loads(fields["data"]))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def submit(
    client: httpx.AsyncClient, token: str, job_type: str, **fields: Any
) -> dict[str, Any]:
    answer = await client.post(
        "/api/v1/jobs", json={"job_type": job_type, **fields}, headers=bearer(token)
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


@contextlib.asynccontextmanager
async def http(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    timeout = httpx.Timeout(30.0, read=30.0)
    async with httpx.AsyncClient(base_url=served.url, timeout=timeout) as client:
        yield client


async def test_events_arrive_in_order_while_a_job_renders_and_the_stream_ends_with_it(
    served: Served, store: Store, settings: Settings, dsn: str, tokens: dict[str, str]
) -> None:
    service = StagedService()
    async with http(served) as client:
        job = await submit(client, tokens["operator"], "staged")
        url = f"/api/v1/jobs/{job['id']}/events"
        seen: list[Sse] = []
        async with (
            client.stream("GET", url, headers=bearer(tokens["viewer"])) as response,
            running_worker(store, settings, {"staged": service}, dsn),
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for event in read_events(response):
                seen.append(event)
                if event.event == "progress":
                    stage = event.data["progress"]["stage"]
                    # Live: the render is still held at this stage while we read it.
                    assert not service.gates[stage].is_set()
                    assert (await store.get_job(uuid.UUID(job["id"]))).status.value == "running"
                    service.gates[stage].set()
            # The loop ended: the server closed the stream after the final state.
    names = [e.event for e in seen]
    assert names == ["created", "claimed", "progress", "progress", "progress", "completed"]
    assert [e.id for e in seen] == sorted({e.id for e in seen})
    assert [e.data["progress"]["stage"] for e in seen if e.event == "progress"] == [
        "prepare",
        "render",
        "encode",
    ]
    assert [e.data["status"] for e in seen] == [
        "queued",
        "running",
        "running",
        "running",
        "running",
        "completed",
    ]
    assert {e.data["job_id"] for e in seen} == {job["id"]}
    assert seen[1].data["worker"] and seen[-1].data["worker"] == seen[1].data["worker"]
    assert seen[2].data["progress"]["percent"] == 10.0
    # Exactly the history the API shows, ids included.
    async with http(served) as client:
        history = (
            await client.get(f"/api/v1/jobs/{job['id']}", headers=bearer(tokens["viewer"]))
        ).json()["events"]
    assert [(e["id"], e["event"]) for e in history] == [(e.id, e.event) for e in seen]
    await eventually(lambda: _true(served.hub.subscribers == 0))


async def test_a_reconnect_with_last_event_id_misses_nothing_and_repeats_nothing(
    served: Served, store: Store, settings: Settings, dsn: str, tokens: dict[str, str]
) -> None:
    service = StagedService()
    headers = bearer(tokens["viewer"])
    async with http(served) as client, running_worker(store, settings, {"staged": service}, dsn):
        job = await submit(client, tokens["operator"], "staged")
        url = f"/api/v1/jobs/{job['id']}/events"
        first: list[Sse] = []
        async with client.stream("GET", url, headers=headers) as response:
            async for event in read_events(response):
                first.append(event)
                if event.event == "progress":
                    break  # the client goes away mid-render
        # The disconnect frees the subscriber.
        await eventually(lambda: _true(served.hub.subscribers == 0))
        # Meanwhile the job moves on: two more stages, then completion.
        service.gates["prepare"].set()
        await asyncio.wait_for(service.reached["render"].wait(), 15)
        service.gates["render"].set()
        await asyncio.wait_for(service.reached["encode"].wait(), 15)
        second: list[Sse] = []
        resume = {**headers, "Last-Event-ID": str(first[-1].id)}
        async with client.stream("GET", url, headers=resume) as response:
            async for event in read_events(response):
                second.append(event)
                if event.event == "progress" and event.data["progress"]["stage"] == "encode":
                    service.gates["encode"].set()  # live again: let it finish
        history = (await client.get(f"/api/v1/jobs/{job['id']}", headers=headers)).json()
    ids = [e.id for e in first + second]
    assert ids == [e["id"] for e in history["events"]], "a gap or a repeat"
    assert [e.event for e in second] == ["progress", "progress", "completed"]
    assert second[0].id > first[-1].id


async def test_a_finished_job_replays_and_closes_and_the_query_parameter_resumes(
    served: Served, store: Store, tokens: dict[str, str]
) -> None:
    headers = bearer(tokens["viewer"])
    async with http(served) as client:
        job = await submit(client, tokens["operator"], "t")
        cancel = await client.post(
            f"/api/v1/jobs/{job['id']}/cancel", headers=bearer(tokens["operator"])
        )
        assert cancel.status_code == 200
        url = f"/api/v1/jobs/{job['id']}/events"
        async with client.stream("GET", url, headers=headers) as response:
            events = [e async for e in read_events(response)]
        assert [e.event for e in events] == ["created", "cancelled"]
        assert events[-1].data["status"] == "cancelled"
        assert events[-1].data["details"]["via"] == "api"
        # Past the last event: nothing to send, and still closed at once.
        resume = f"{url}?last_event_id={events[-1].id}"
        async with client.stream("GET", resume, headers=headers) as response:
            assert [e async for e in read_events(response)] == []
        resume = f"{url}?last_event_id={events[0].id}"
        async with client.stream("GET", resume, headers=headers) as response:
            assert [e.event async for e in read_events(response)] == ["cancelled"]


async def test_who_may_read_a_stream(served: Served, store: Store, tokens: dict[str, str]) -> None:
    async with http(served) as client:
        mine = await submit(client, tokens["operator"], "t")
        other = await submit(client, tokens["operator"], "t")
        batch = await client.post(
            "/api/v1/jobs", json=[{"job_type": "t"}], headers=bearer(tokens["operator"])
        )
        assert batch.json()["jobs"][0]["read_token"]
        for job in (mine, other):
            await client.post(
                f"/api/v1/jobs/{job['id']}/cancel", headers=bearer(tokens["operator"])
            )
        url = f"/api/v1/jobs/{mine['id']}/events"
        # No credentials at all: 401, on both streams.
        assert (await client.get(url)).status_code == 401
        assert (await client.get("/api/v1/events")).status_code == 401
        # A bad bearer token, a wrong read token, another job's read token: 401.
        assert (await client.get(url, headers=bearer("vq_nope"))).status_code == 401
        assert (await client.get(url, params={"token": "x" * 43})).status_code == 401
        assert (await client.get(url, params={"token": other["read_token"]})).status_code == 401
        # A read token opens its own job's stream, not the all-jobs one.
        async with client.stream("GET", url, params={"token": mine["read_token"]}) as response:
            assert response.status_code == 200
            assert [e.event async for e in read_events(response)] == ["created", "cancelled"]
        everything = await client.get("/api/v1/events", params={"token": mine["read_token"]})
        assert everything.status_code == 401
        # A viewer reads (the first test streams a render as a viewer too).
        async with client.stream("GET", url, headers=bearer(tokens["viewer"])) as response:
            assert response.status_code == 200
            assert len([e async for e in read_events(response)]) == 2
        missing = f"/api/v1/jobs/{uuid.uuid4()}/events"
        assert (await client.get(missing, headers=bearer(tokens["viewer"]))).status_code == 404


async def test_the_all_jobs_stream_filters_by_type_and_resumes(
    served: Served, store: Store, tokens: dict[str, str]
) -> None:
    operator, viewer = bearer(tokens["operator"]), bearer(tokens["viewer"])
    async with http(served) as client:
        got: list[Sse] = []
        async with client.stream(
            "GET", "/api/v1/events", params={"type": "wanted"}, headers=viewer
        ) as response:
            assert response.status_code == 200
            await eventually(lambda: _true(served.hub.subscribers == 1))
            other = await submit(client, tokens["operator"], "other")
            wanted = await submit(client, tokens["operator"], "wanted")
            for job in (other, wanted):
                await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=operator)
            async for event in read_events(response):
                got.append(event)
                if event.event == "cancelled":
                    break  # the stream itself does not end
        # Every event of "other" came before the last one read: none was let through.
        assert [(e.data["job_id"], e.event) for e in got] == [
            (wanted["id"], "created"),
            (wanted["id"], "cancelled"),
        ]
        assert {e.data["job_type"] for e in got} == {"wanted"}
        # Resumed after the first: the replay brings the second, then it goes live.
        resumed: list[Sse] = []
        headers = {**viewer, "Last-Event-ID": str(got[0].id)}
        async with client.stream(
            "GET", "/api/v1/events", params={"type": "wanted"}, headers=headers
        ) as response:
            async for event in read_events(response):
                resumed.append(event)
                if event.event == "created":
                    break
                third = await submit(client, tokens["operator"], "wanted")
        assert [e.event for e in resumed] == ["cancelled", "created"]
        assert resumed[0].id == got[1].id and resumed[1].data["job_id"] == third["id"]
    await eventually(lambda: _true(served.hub.subscribers == 0))


async def test_stacks_stay_with_admins(
    served: Served, store: Store, tokens: dict[str, str]
) -> None:
    job = await store.enqueue(NewJob("t"))
    (claimed,) = await store.claim("w1", {"t": "noop"}, 1, 30)
    error = {"type": "UNKNOWN", "message": "boom", "retryable": False, "stack": "Traceback..."}
    await store.fail("w1", claimed.id, error, None)
    url = f"/api/v1/jobs/{job.id}/events"
    async with http(served) as client:
        shown = {}
        for role in ("viewer", "admin"):
            async with client.stream("GET", url, headers=bearer(tokens[role])) as response:
                shown[role] = [e async for e in read_events(response)]
    assert shown["viewer"][-1].event == "failed"
    assert "stack" not in shown["viewer"][-1].data["details"]
    assert shown["viewer"][-1].data["details"]["message"] == "boom"
    assert shown["admin"][-1].data["details"]["stack"] == "Traceback..."


# -- the hub's gap rule, against real concurrent transactions ----------------------


async def _hub(store: Store, dsn: str) -> EventHub:
    async def the_dsn() -> str:
        return dsn

    return EventHub(store, the_dsn, poll_interval=0.5)


async def test_an_event_committed_out_of_id_order_is_neither_skipped_nor_reordered(
    store: Store, dsn: str
) -> None:
    hub = await _hub(store, dsn)
    job = await store.enqueue(NewJob("t"))
    sub = await hub.subscribe(job_id=job.id)
    slow = await db.connect(dsn)
    try:
        tx = slow.transaction()
        await tx.start()
        # The slow transaction takes the lower id, a later one commits first.
        await slow.execute("INSERT INTO vq.job_events (job_id, event) VALUES ($1, 'slow')", job.id)
        await store.pool.execute(
            "INSERT INTO vq.job_events (job_id, event) VALUES ($1, 'fast')", job.id
        )
        held = await sub.next(1.0)
        assert held is None, "the hub stepped over an id still to commit"
        await tx.commit()
        first, second = await sub.next(5.0), await sub.next(5.0)
        assert first is not None and second is not None
        assert (first.event, second.event) == ("slow", "fast") and first.id < second.id
    finally:
        await slow.close()
        await hub.close()


async def test_a_rolled_back_event_leaves_a_gap_the_hub_steps_over(store: Store, dsn: str) -> None:
    hub = await _hub(store, dsn)
    job = await store.enqueue(NewJob("t"))
    sub = await hub.subscribe(job_id=job.id)
    slow = await db.connect(dsn)
    try:
        tx = slow.transaction()
        await tx.start()
        await slow.execute(
            "INSERT INTO vq.job_events (job_id, event) VALUES ($1, 'doomed')", job.id
        )
        await store.pool.execute(
            "INSERT INTO vq.job_events (job_id, event) VALUES ($1, 'kept')", job.id
        )
        await tx.rollback()
        kept = await sub.next(5.0)
        # Well before max_hold (5 s): the rollback was recognised, not waited out.
        assert kept is not None and kept.event == "kept"
    finally:
        await slow.close()
        await hub.close()


async def test_the_trigger_sends_one_notification_per_statement(store: Store, dsn: str) -> None:
    heard: list[str] = []
    conn = await db.connect(dsn)
    try:
        await conn.add_listener("vq_events", lambda *args: heard.append(args[3]))
        await store.enqueue_many([NewJob("t") for _ in range(50)])
        await eventually(lambda: _true(len(heard) >= 1))
        await store.enqueue(NewJob("t"))
        await eventually(lambda: _true(len(heard) >= 2))
        assert heard == ["", ""]
    finally:
        await conn.close()
