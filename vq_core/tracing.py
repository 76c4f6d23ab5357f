"""OpenTelemetry traces: spans of a job's life, when the ``otel`` extra is installed and
the standard ``OTEL_*`` variables ask for them (docs/deployment.md, "Traces").

Off by default. ``configure_from_env`` (every vq process calls it as it opens its
runtime) turns traces on when

- the extra is installed (``pip install 'vq[otel]'``: the SDK and the OTLP/HTTP exporter),
- ``OTEL_SDK_DISABLED`` is not ``true``, and
- ``OTEL_TRACES_EXPORTER`` names an exporter other than ``none``, or
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set
  (the exporter is then ``otlp``).

Nothing of OpenTelemetry is imported until then: every helper here checks one module
global and returns at once (``span`` hands back a shared no-op context manager), so a
process without traces pays nothing per job. The spans:

``vq.submit`` (API and CLI, kind PRODUCER) -> ``vq.claim`` and ``vq.job`` (CONSUMER) ->
``vq.render`` (CLIENT, the service call; its context goes to the service as
``traceparent``), ``vq.verify`` (CLIENT) and ``vq.complete`` (the batched write).

The submission's context travels with the job in ``jobs.trace_context`` as a W3C
carrier (``{"traceparent": ..., "tracestate": ...}``), whatever ``OTEL_PROPAGATORS``
says, so a worker configured differently still reads it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from vq_core.models import ClaimedJob, NewJob

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger("vq.tracing")
T = TypeVar("T")

#: A stored trace context: the W3C ``traceparent`` (and ``tracestate``, if any).
TraceContext = dict[str, str]
Kind = Literal["internal", "server", "client", "producer", "consumer"]
Attributes = Mapping[str, str | bool | int | float | Sequence[str]]

# The W3C spec lets a receiver cut a longer tracestate; it is copied into every job row.
_MAX_TRACESTATE = 512
_NOOP: contextlib.nullcontext[None] = contextlib.nullcontext()

# None: traces are off. Set by use(); read by every helper first.
_tracer: Tracer | None = None
_configured = False


def enabled() -> bool:
    """Whether spans are recorded (the one check on the hot path)."""
    return _tracer is not None


def requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces (the rule of the module docstring)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if _exporter_names(env):
        return True
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def _exporter_names(env: Mapping[str, str]) -> list[str]:
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",")]
    return [n for n in names if n and n != "none"]


def configure_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Turn traces on when the ``OTEL_*`` variables ask for them, once per process.

    Installs an SDK ``TracerProvider`` (resource from ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES``, ``service.name`` ``vq`` by default; sampler from
    ``OTEL_TRACES_SAMPLER``) as the global provider, with a batch processor per exporter
    of ``OTEL_TRACES_EXPORTER`` (``otlp`` by default). Never turns traces off: a provider
    given to ``use`` stays. Returns whether traces are on.
    """
    global _configured
    env = os.environ if environ is None else environ
    if _configured or not requested(env):
        return enabled()
    _configured = True
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_* variables ask for traces, but vq[otel] is not installed; no traces")
        return enabled()
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "vq"}))
    provider = TracerProvider(resource=resource)
    exporters = [_exporter(name) for name in _exporter_names(env) or ["otlp"]]
    for exporter in exporters:
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    # Global, so an instrumentation a plugin adds (httpx, asyncpg) joins the same traces.
    trace.set_tracer_provider(provider)
    use(provider)
    log.info("traces on: %s", ", ".join(_exporter_names(env) or ["otlp"]))
    return True


def _exporter(name: str) -> SpanExporter | None:
    """The exporter ``OTEL_TRACES_EXPORTER`` names: ``otlp`` (over HTTP, what the extra
    ships), ``console``, or any ``opentelemetry_traces_exporter`` entry point."""
    if name in ("otlp", "otlp_proto_http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from importlib.metadata import entry_points

    for entry in entry_points(group="opentelemetry_traces_exporter", name=name):
        exporter: SpanExporter = entry.load()()
        return exporter
    log.warning("OTEL_TRACES_EXPORTER: no exporter %r is installed; its spans are dropped", name)
    return None


def use(provider: TracerProvider | None) -> None:
    """Record vq's spans with ``provider`` (``None``: traces off). ``configure_from_env``
    calls it; tests and programs that embed vq call it with a provider of their own."""
    global _tracer
    if provider is None:
        _tracer = None
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        vq_version: str | None = version("vq")
    except PackageNotFoundError:
        vq_version = None
    _tracer = provider.get_tracer("vq", vq_version)


# -- spans --------------------------------------------------------------------------


def _span_kind(kind: Kind) -> Any:
    from opentelemetry.trace import SpanKind

    return SpanKind[kind.upper()]


def _stored_parent(parent: Mapping[str, str] | None) -> Context | None:
    """The context of a stored W3C carrier; ``None``: the current context."""
    if parent is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract(parent)


def span(
    name: str,
    *,
    parent: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    kind: Kind = "internal",
    attributes: Attributes | None = None,
) -> contextlib.AbstractContextManager[Span | None]:
    """A context manager around a span made current for the block (a shared no-op when
    traces are off). Its parent: the stored context ``parent``, else the caller's context
    in HTTP ``headers`` (through the configured propagators), else the current span.
    An exception leaving the block is recorded and marks the span as an error."""
    tracer = _tracer
    if tracer is None:
        return _NOOP
    if headers is not None:
        from opentelemetry import propagate

        context: Context | None = propagate.extract(headers)
    else:
        context = _stored_parent(parent)
    return tracer.start_as_current_span(
        name, context=context, kind=_span_kind(kind), attributes=attributes
    )


def start_span(
    name: str, *, kind: Kind = "internal", attributes: Attributes | None = None
) -> Span | None:
    """A child of the current span that the caller ends with ``end_span`` (from another
    task, later); ``None`` when traces are off."""
    tracer = _tracer
    if tracer is None:
        return None
    return tracer.start_span(name, kind=_span_kind(kind), attributes=attributes)


def end_span(span: Span, error: str | None = None) -> None:
    """End a span of ``start_span``; ``error`` marks it as failed with that description."""
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, error))
    span.end()


def annotate(attributes: Attributes) -> None:
    """Add attributes to the current span (nothing when traces are off)."""
    if _tracer is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attributes(attributes)


def failed(category: str, message: str) -> None:
    """Mark the current span as failed: a job attempt's error category and message."""
    if _tracer is None:
        return
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    current = trace.get_current_span()
    current.set_attribute("vq.error.category", category)
    current.set_status(Status(StatusCode.ERROR, message[:500]))


def record_claims(jobs: Iterable[ClaimedJob], start_ns: int, end_ns: int, worker_id: str) -> None:
    """A ``vq.claim`` span per traced job of a claim, from ``start_ns`` to ``end_ns``
    (``time.time_ns()``): one statement claimed them all, each trace gets its share."""
    tracer = _tracer
    if tracer is None:
        return
    kind = _span_kind("consumer")
    for job in jobs:
        if job.trace_context is None:
            continue  # submitted without traces: its vq.job span starts a trace
        claim = tracer.start_span(
            "vq.claim",
            context=_stored_parent(job.trace_context),
            kind=kind,
            attributes={
                "vq.job.id": str(job.id),
                "vq.job.type": job.job_type,
                "vq.worker.id": worker_id,
            },
            start_time=start_ns,
        )
        claim.end(end_time=end_ns)


# -- contexts -----------------------------------------------------------------------


def current_context() -> TraceContext | None:
    """The current span's W3C context, to store with a job; ``None`` without one."""
    if _tracer is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: TraceContext = {}
    TraceContextTextMapPropagator().inject(carrier)
    if "traceparent" not in carrier:
        return None
    if len(carrier.get("tracestate", "")) > _MAX_TRACESTATE:
        del carrier["tracestate"]
    return carrier


def inject(headers: MutableMapping[str, str]) -> None:
    """Add the current context's headers (``traceparent``, through the configured
    propagators) to an outgoing request's; nothing when traces are off."""
    if _tracer is None:
        return
    from opentelemetry import propagate

    propagate.inject(headers)


async def submit(
    jobs: Sequence[NewJob],
    enqueue: Callable[[Sequence[NewJob]], Awaitable[list[T]]],
    *,
    via: str,
    headers: Mapping[str, str] | None = None,
) -> list[T]:
    """``enqueue(jobs)`` in a ``vq.submit`` span whose context each job carries (traces
    on); ``enqueue(jobs)`` alone otherwise. ``headers``: the caller's, whose trace the
    span continues."""
    if _tracer is None:
        return await enqueue(jobs)
    attributes: dict[str, Any] = {"vq.via": via, "vq.job.count": len(jobs)}
    types = sorted({j.job_type for j in jobs})
    attributes["vq.job.type"] = types[0] if len(types) == 1 else types
    with span("vq.submit", headers=headers, kind="producer", attributes=attributes):
        context = current_context()
        traced = [dataclasses.replace(j, trace_context=context) for j in jobs]
        answers = await enqueue(traced)
        ids = [str(getattr(a, "id", "")) for a in answers]
        if len(ids) == 1:
            annotate({"vq.job.id": ids[0]})
        return answers
