"""OpenTelemetry traces: one trace from the submission to the completion, the context
stored with the job, ``traceparent`` at the video services; and nothing at all when off.

Spans go to the SDK's in-memory exporter through a provider the test hands to
``vq_core.tracing.use``; the rule that reads the ``OTEL_*`` variables runs in
subprocesses, where installing the global provider touches no other test.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from support.helpers import eventually, running_worker
from support.services import reference_server

from vq_core import tracing
from vq_core.cli.main import cli
from vq_core.config import Settings
from vq_core.models import FINAL_STATUSES, Job, JobStatus, NewJob, QueueConfig
from vq_core.store import Store
from vq_plugins.reference.reference_services import ReferenceServer
from vq_plugins.services.orchestrator import OrchestratorService

pytest_plugins = ["support.api"]  # app, client, tokens

JOBS = "/api/v1/jobs"
QUESTION = {"question": "Why is the sky blue?", "length": 5}
# The platform's request that submits the job: its trace is the one vq continues.
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """vq's spans, kept in memory (traces on for this test only)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.use(None)
        provider.shutdown()


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[ReferenceServer]:
    with reference_server(tmp_path / "media") as server:
        yield server


@pytest.fixture
async def operator(client: httpx.AsyncClient, tokens: dict[str, str]) -> httpx.AsyncClient:
    client.headers["Authorization"] = f"Bearer {tokens['operator']}"
    return client


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection: what is stored, as the database holds it (no codecs)."""
    c = await asyncpg.connect(dsn)
    yield c
    await c.close()


def services(reference: ReferenceServer) -> dict[str, OrchestratorService]:
    service = OrchestratorService(reference.url, job_types=("doubt",), read_timeout=30)
    return {service.name: service}


async def final(store: Store, job_id: uuid.UUID) -> Job:
    async def check() -> Job | None:
        job = await store.get_job(job_id)
        return job if job.status in FINAL_STATUSES else None

    return await eventually(check, timeout=60)


def by_name(spans: Sequence[ReadableSpan]) -> dict[str, ReadableSpan]:
    names = [s.name for s in spans]
    assert len(names) == len(set(names)), f"a span twice: {names}"
    return {s.name: s for s in spans}


async def spans_of(exporter: InMemorySpanExporter, *names: str) -> dict[str, ReadableSpan]:
    """The finished spans once every one of ``names`` is among them."""

    async def check() -> tuple[ReadableSpan, ...] | None:
        spans = exporter.get_finished_spans()
        return spans if set(names) <= {s.name for s in spans} else None

    return by_name(await eventually(check, timeout=30))


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def traceparent_of(span: ReadableSpan) -> str:
    assert span.context is not None
    flags = int(span.context.trace_flags)
    return f"00-{trace_id(span):032x}-{span_id(span):016x}-{flags:02x}"


async def stored_context(conn: asyncpg.Connection, job_id: uuid.UUID | str) -> Any:
    raw = await conn.fetchval(
        "SELECT trace_context FROM vq.jobs WHERE id = $1", uuid.UUID(str(job_id))
    )
    return None if raw is None else json.loads(raw)


# -- one trace, end to end ------------------------------------------------------------


async def test_one_trace_runs_from_the_api_request_to_the_completion(
    operator: httpx.AsyncClient,
    store: Store,
    settings: Settings,
    dsn: str,
    conn: asyncpg.Connection,
    reference: ReferenceServer,
    exporter: InMemorySpanExporter,
) -> None:
    async with running_worker(store, settings, services(reference), dsn) as worker:
        r = await operator.post(
            JOBS, json={"job_type": "doubt", "payload": QUESTION}, headers={"traceparent": CALLER}
        )
        assert r.status_code == 201, r.text
        job_id = uuid.UUID(r.json()["id"])
        job = await final(store, job_id)
        assert job.status is JobStatus.COMPLETED, job.error
        names = ("vq.submit", "vq.claim", "vq.job", "vq.render", "vq.verify", "vq.complete")
        spans = await spans_of(exporter, *names)
    assert set(spans) == set(names)
    submit, claim, run = spans["vq.submit"], spans["vq.claim"], spans["vq.job"]
    render, verify, complete = spans["vq.render"], spans["vq.verify"], spans["vq.complete"]

    # One trace, the caller's; the submission continues the caller's span.
    assert {f"{trace_id(s):032x}" for s in spans.values()} == {CALLER_TRACE}
    assert submit.parent is not None and submit.parent.is_remote
    assert f"{parent_id(submit):016x}" == CALLER_SPAN
    # The worker's side hangs off the submission it read from the job row.
    assert parent_id(claim) == span_id(submit) and parent_id(run) == span_id(submit)
    assert claim.parent is not None and claim.parent.is_remote
    for child in (render, verify, complete):
        assert parent_id(child) == span_id(run), child.name
    assert (submit.kind, claim.kind, run.kind) == (
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
        SpanKind.CONSUMER,
    )
    assert render.kind is SpanKind.CLIENT and verify.kind is SpanKind.CLIENT
    assert all(s.status.status_code is not StatusCode.ERROR for s in spans.values())
    # In order: the claim before the run; the render, then the check, then the write.
    assert claim.end_time is not None and run.start_time is not None
    assert claim.start_time is not None and claim.start_time <= claim.end_time <= run.start_time
    assert render.end_time is not None and verify.start_time is not None
    assert render.end_time <= verify.start_time
    assert verify.end_time is not None and complete.start_time is not None
    assert verify.end_time <= complete.start_time

    attrs = {name: dict(s.attributes or {}) for name, s in spans.items()}
    assert attrs["vq.submit"] == {
        "vq.via": "api",
        "vq.job.count": 1,
        "vq.job.type": "doubt",
        "vq.job.id": str(job_id),
    }
    for name in ("vq.claim", "vq.job"):
        assert attrs[name]["vq.job.id"] == str(job_id)
        assert attrs[name]["vq.worker.id"] == worker.id
    assert attrs["vq.job"]["vq.service"] == "orchestrator"
    assert attrs["vq.job"]["vq.job.attempt"] == 1
    assert attrs["vq.render"] == {"vq.service": "orchestrator"}
    assert attrs["vq.verify"] == {"vq.video.origin": reference.url}

    # The context stored with the job is the submission span's ...
    assert await stored_context(conn, job_id) == {"traceparent": traceparent_of(submit)}
    assert job.trace_context == {"traceparent": traceparent_of(submit)}
    # ... and the service got the render span's, as W3C traceparent.
    [request] = reference.requests("/render")
    assert request["traceparent"] == traceparent_of(render)


async def test_a_failed_attempt_marks_its_spans_as_errors(
    operator: httpx.AsyncClient,
    store: Store,
    settings: Settings,
    dsn: str,
    reference: ReferenceServer,
    exporter: InMemorySpanExporter,
) -> None:
    reference.set_faults(status=400)  # INVALID_INPUT: failed at once, no retry
    async with running_worker(store, settings, services(reference), dsn):
        r = await operator.post(JOBS, json={"job_type": "doubt", "payload": QUESTION})
        job = await final(store, uuid.UUID(r.json()["id"]))
        spans = await spans_of(exporter, "vq.submit", "vq.claim", "vq.job", "vq.render")
    assert job.status is JobStatus.FAILED
    assert set(spans) == {"vq.submit", "vq.claim", "vq.job", "vq.render"}  # no verify
    # No caller header: the submission is the root of the trace.
    assert spans["vq.submit"].parent is None
    assert len({trace_id(s) for s in spans.values()}) == 1
    run, render = spans["vq.job"], spans["vq.render"]
    assert (
        run.status.status_code is StatusCode.ERROR and render.status.status_code is StatusCode.ERROR
    )
    assert (run.attributes or {})["vq.error.category"] == "INVALID_INPUT"
    assert "answered 400" in (run.status.description or "")
    [request] = reference.requests("/render")
    assert request["traceparent"] == traceparent_of(render)


async def test_batches_with_and_without_keys_store_the_request_context(
    operator: httpx.AsyncClient,
    conn: asyncpg.Connection,
    exporter: InMemorySpanExporter,
) -> None:
    one = {"job_type": "doubt", "payload": QUESTION}
    unkeyed = await operator.post(JOBS, json=[one, one], headers={"traceparent": CALLER})
    keyed = await operator.post(JOBS, json=[one, one], headers={"Idempotency-Key": "k"})
    assert unkeyed.status_code == keyed.status_code == 201
    submits = [s for s in exporter.get_finished_spans() if s.name == "vq.submit"]
    assert len(submits) == 2
    for response, submit in zip((unkeyed, keyed), submits, strict=True):
        assert (submit.attributes or {})["vq.job.count"] == 2
        assert "vq.job.id" not in (submit.attributes or {})
        for item in response.json()["jobs"]:
            stored = await stored_context(conn, item["id"])
            assert stored == {"traceparent": traceparent_of(submit)}
    assert f"{trace_id(submits[0]):032x}" == CALLER_TRACE
    assert f"{trace_id(submits[1]):032x}" != CALLER_TRACE


async def test_the_store_carries_the_context_through_both_claims(store: Store) -> None:
    context = {"traceparent": CALLER, "tracestate": "vendor=1"}
    a = await store.enqueue(NewJob("free", trace_context=context))
    b = await store.enqueue(NewJob("capped", idempotency_key="b", trace_context=context))
    c = await store.enqueue(NewJob("free"))
    await store.set_queue_config(QueueConfig("capped", max_running=5))
    claimed = await store.claim("w", {"free": "s", "capped": "s"}, 10, 30, limited=["capped"])
    got = {j.id: j.trace_context for j in claimed}
    assert got == {a.id: context, b.id: context, c.id: None}
    assert (await store.get_job(a.id)).trace_context == context


# -- the command line -----------------------------------------------------------------


def test_vq_submit_creates_a_span_and_stores_its_context(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exporter: InMemorySpanExporter
) -> None:
    monkeypatch.setenv("VQ_DATABASE_URL", dsn)
    monkeypatch.setenv("VQ_DATA_DIR", str(tmp_path))
    runner = CliRunner()

    def submit() -> str:
        args = ["submit", "doubt", "--payload", json.dumps(QUESTION), "--json"]
        result = runner.invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        job_id: str = json.loads(result.output)["id"]
        return job_id

    def stored(job_id: str) -> Any:
        async def read() -> Any:
            c = await asyncpg.connect(dsn)
            try:
                return await stored_context(c, job_id)
            finally:
                await c.close()

        return asyncio.run(read())

    first = submit()
    monkeypatch.setenv("TRACEPARENT", CALLER)  # a traced script's context
    second = submit()
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["vq.submit", "vq.submit"]
    alone, continued = spans
    assert alone.kind is SpanKind.PRODUCER and alone.parent is None
    assert dict(alone.attributes or {}) == {
        "vq.via": "cli",
        "vq.job.count": 1,
        "vq.job.type": "doubt",
        "vq.job.id": first,
    }
    assert stored(first) == {"traceparent": traceparent_of(alone)}
    assert f"{trace_id(continued):032x}" == CALLER_TRACE
    assert f"{parent_id(continued):016x}" == CALLER_SPAN
    assert stored(second) == {"traceparent": traceparent_of(continued)}


# -- off ------------------------------------------------------------------------------


async def test_with_traces_off_nothing_is_recorded_nor_stored_nor_sent(
    app: FastAPI,
    operator: httpx.AsyncClient,
    store: Store,
    settings: Settings,
    dsn: str,
    conn: asyncpg.Connection,
    reference: ReferenceServer,
) -> None:
    # A provider exists, but vq was not handed it: whatever vq records would land here.
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert not tracing.enabled()
    one = {"job_type": "doubt", "payload": QUESTION}
    async with running_worker(store, settings, services(reference), dsn):
        r = await operator.post(JOBS, json=one, headers={"traceparent": CALLER})
        batch = await operator.post(
            JOBS, json=[one, one], headers={"traceparent": CALLER, "Idempotency-Key": "k"}
        )
        ids = [r.json()["id"]] + [item["id"] for item in batch.json()["jobs"]]
        for job_id in ids:
            assert (await final(store, uuid.UUID(job_id))).status is JobStatus.COMPLETED
    assert exporter.get_finished_spans() == ()
    assert await conn.fetchval("SELECT count(*) FROM vq.jobs WHERE trace_context IS NOT NULL") == 0
    seen = reference.requests("/render")
    assert len(seen) == 3 and {e["traceparent"] for e in seen} == {None}
    provider.shutdown()


# -- the OTEL_* rule, in processes of their own ---------------------------------------

# Off, the SDK is never imported. (The API may be: FastAPI imports it when installed.)
_PROBE = """
import asyncio, json, sys
from vq_core import tracing
import vq_core.runtime, vq_core.worker.runner, vq_ui.api.jobs, vq_plugins.services.http_service
from vq_core.models import NewJob

on = tracing.configure_from_env()

async def enqueue(jobs):
    return [j.trace_context for j in jobs]

stored = asyncio.run(tracing.submit([NewJob("doubt")], enqueue, via="cli"))
if on:
    from opentelemetry import trace
    trace.get_tracer_provider().force_flush()
print(json.dumps({"on": on, "stored": stored,
                  "sdk_imported": any(m.startswith("opentelemetry.sdk") for m in sys.modules)}))
"""


def probe(env: dict[str, str]) -> tuple[dict[str, Any], str]:
    """Run ``_PROBE`` with only ``env``'s OTEL_* variables: its report and all it printed."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env={**base, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1]), out


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_SERVICE_NAME": "vq-web"},  # says who, not where to: still off
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "TRUE"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"},
    ],
)
def test_off_unless_otel_variables_ask_and_then_nothing_is_imported(env: dict[str, str]) -> None:
    report, _ = probe(env)
    assert report == {"on": False, "stored": [None], "sdk_imported": False}


def test_otel_traces_exporter_console_prints_the_spans() -> None:
    report, out = probe({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "vq-test"})
    assert report["on"] is True
    [stored] = report["stored"]
    assert stored["traceparent"].startswith("00-")
    assert '"name": "vq.submit"' in out and '"service.name": "vq-test"' in out
    assert stored["traceparent"].split("-")[1] in out.replace("0x", "")


async def test_an_otlp_endpoint_alone_sends_the_spans_there_over_http() -> None:
    received: list[tuple[str, bytes]] = []

    async def collector(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # An OTLP/HTTP collector's part: read the whole request, answer 200.
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        length = next(
            int(line.split(":", 1)[1])
            for line in head.split("\r\n")
            if line.lower().startswith("content-length:")
        )
        received.append((head.split(" ", 2)[1], await reader.readexactly(length)))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(collector, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        report, _ = await asyncio.to_thread(probe, {"OTEL_EXPORTER_OTLP_ENDPOINT": url})
    finally:
        server.close()
        await server.wait_closed()
    assert report["on"] is True
    trace_hex = report["stored"][0]["traceparent"].split("-")[1]
    [(path, body)] = received
    # The protobuf export request holds the span's name and its 16-byte trace id.
    assert path == "/v1/traces"
    assert b"vq.submit" in body and bytes.fromhex(trace_hex) in body
