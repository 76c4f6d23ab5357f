"""Running one job: call its service, verify the video, and record success or failure.

Nothing a service does can crash the worker: every exception becomes a
categorised error on the job, and a database error while recording it is
retried until it lands or the lease runs out (then lease recovery requeues it).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import pluggy

from vq_core import tracing
from vq_core.config import Settings
from vq_core.db import DB_ERRORS
from vq_core.errors import InvalidInput, ServiceError, error_record
from vq_core.models import ClaimedJob, ErrorCategory, JobStatus
from vq_core.store import Store
from vq_core.video_service import ProgressCallback, VideoService, url_origin
from vq_core.worker.events import EventEmitter
from vq_core.worker.prefetch import Prefetch
from vq_core.worker.retry_policy import default_category, retry_delay
from vq_core.worker.routing import Router
from vq_core.worker.verification import allowed_origins, make_client, verify_video

log = logging.getLogger("vq.job")
_DB_ERRORS = DB_ERRORS
PROGRESS_MIN_INTERVAL = 0.5
T = TypeVar("T")


_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def _origin(url: str) -> str:
    try:
        return url_origin(url)
    except ValueError:
        return ""  # the check itself says what is wrong with it


def _not_an_object(payload: object) -> InvalidInput:
    # INVALID_INPUT, so it fails once: no retry turns [1, 2] into an object.
    kind = "null" if payload is None else _JSON_KINDS.get(type(payload), type(payload).__name__)
    return InvalidInput(f"payload: must be a JSON object, not a JSON {kind}")


class Completer(Protocol):
    """Records successes: later, in a batch with others (``BatchCompleter``)."""

    def complete_later(self, job_id: uuid.UUID, result: dict[str, Any]) -> None:
        """Queue ``result`` as the outcome of ``job_id``."""


class JobRunner:
    """Executes claimed jobs for a worker.

    It is handed what it uses rather than the worker: ``completer`` records successes,
    ``wake`` asks for a claim when a retry's wait is over, and ``tasks`` (the worker's
    jobs in flight, by id) is where ``abort`` finds the task to cancel.
    """

    def __init__(
        self,
        *,
        worker_id: str,
        store: Store,
        router: Router,
        settings: Settings,
        pm: pluggy.PluginManager,
        events: EventEmitter,
        completer: Completer,
        wake: Callable[[], None],
        tasks: Mapping[uuid.UUID, asyncio.Task[None]],
    ) -> None:
        self.worker_id = worker_id
        self.store = store
        self.router = router
        self.settings = settings
        self.pm = pm
        self.tasks = tasks
        self._wake = wake
        # Bound once: both run for every job.
        self._emit = events.emit
        self._complete_later = completer.complete_later
        self.aborting: dict[uuid.UUID, str] = {}
        # One client for every verification: connections and TLS set-up are reused.
        self.http = make_client()
        self.video_origins = allowed_origins(settings, router.services.values())
        # When each job started and its type, for the completion event after the batch write.
        self._started: dict[uuid.UUID, tuple[float, str]] = {}
        # Traces on: each vq.complete span from the hand-over to the batch write.
        self._completing: dict[uuid.UUID, Any] = {}
        # The pace of the jobs, which sets how many the claimer may hold beyond its slots.
        self.prefetch = Prefetch(settings.concurrency, settings.prefetch, settings.prefetch_wait)

    # -- running ----------------------------------------------------------------------

    async def execute(self, job: ClaimedJob) -> None:
        """Run ``job`` to an outcome; never raises."""
        started = time.monotonic()
        try:
            await self._traced(job)
        finally:
            self.prefetch.observe(time.monotonic() - started)

    async def cancel_unstarted(self, job: ClaimedJob) -> None:
        """Record the cancel of a job the worker held but never started (no render to
        stop, no outcome to observe but the cancel)."""
        done = await self._guard(lambda: self.store.mark_cancelled(self.worker_id, job.id))
        if done:
            self._emit(job.id, "cancelled", self._details(job))

    async def _traced(self, job: ClaimedJob) -> None:
        if not tracing.enabled():
            await self._execute(job)
            return
        service = self.router.service_for(job.job_type)
        attributes: dict[str, str | int] = {
            "vq.job.id": str(job.id),
            "vq.job.type": job.job_type,
            "vq.job.attempt": job.retry_count + 1,
            "vq.worker.id": self.worker_id,
            "vq.service": service.name if service else "",
        }
        # The submission's trace continues ({}: a job submitted untraced starts one).
        parent = job.trace_context or {}
        with tracing.span("vq.job", parent=parent, kind="consumer", attributes=attributes):
            await self._execute(job)

    async def _execute(self, job: ClaimedJob) -> None:
        router = self.router
        service = router.service_for(job.job_type)
        self._started[job.id] = (time.monotonic(), job.job_type)
        # One event for "claimed, now calling service X": observers run per event.
        self._emit(
            job.id,
            "claimed",
            self._details(job, wait_s=self._wait_s(job), service=service.name if service else None),
        )
        timer: asyncio.TimerHandle | None = None
        try:
            if service is None:
                raise ServiceError(ErrorCategory.UNKNOWN, f"no service renders {job.job_type!r}")
            if not isinstance(job.payload, dict):
                raise _not_an_object(job.payload)
            default = self.settings.default_timeout
            timeout = router.timeout_for(job.job_type, default)
            if not 0 < timeout < math.inf and timeout != default:  # NaN fails all three
                # The schema refuses such a value (migration 0009); never let one fail jobs.
                msg = "job %s: timeout_s of %s is %r; using default_timeout (%gs)"
                log.warning(msg, job.id, job.job_type, timeout, default)
                timeout = default
            # A timer handle, not asyncio.timeout(): the same effect at a fraction of the
            # cost, and the timeout takes the abort path shared with cancels.
            loop = asyncio.get_running_loop()
            timer = loop.call_at(loop.time() + timeout, self.abort, job.id, "timeout")
            result = await self._render_and_verify(service.name, job)
        except asyncio.CancelledError:
            if self.aborting.get(job.id) != "timeout":
                self._started.pop(job.id, None)
                await self._aborted(job)
                return
            del self.aborting[job.id]
            await self._failure(job, service, TimeoutError(f"render timed out after {timeout:g}s"))
            return
        except Exception as exc:
            await self._failure(job, service, exc)
            return
        finally:
            if timer is not None:
                timer.cancel()
        # An abort asked for as the render returned came too late: the job completes.
        self.aborting.pop(job.id, None)
        router.record_outcome(service.name, None)
        if tracing.enabled():
            # Ended by completed(), once the batch write holds the job (or lost it).
            self._completing[job.id] = tracing.start_span("vq.complete")
        self._complete_later(job.id, result)

    async def _failure(
        self, job: ClaimedJob, service: VideoService | None, exc: BaseException
    ) -> None:
        self.aborting.pop(job.id, None)
        started = self._started.pop(job.id, None)
        duration = time.monotonic() - started[0] if started else None
        if service is not None:
            await self._note_service(service.name, exc)
        await self._guard(functools.partial(self._failed, job, exc, duration))

    async def _render_and_verify(self, service_name: str, job: ClaimedJob) -> dict[str, Any]:
        service = self.router.services[service_name]
        if tracing.enabled():
            # Current for the call: an HTTP service sends its context as traceparent.
            attributes = {"vq.service": service_name}
            with tracing.span("vq.render", kind="client", attributes=attributes):
                result = await service.render(job, self._progress_callback(job))
        else:
            result = await service.render(job, self._progress_callback(job))
        if not isinstance(result, dict):
            raise ServiceError(
                ErrorCategory.BAD_RESPONSE,
                f"service returned {type(result).__name__}, not a result object",
                service=service_name,
            )
        video_url = result.get("video_url")
        if video_url is not None:
            check = functools.partial(
                verify_video,
                str(video_url),
                self.http,
                self.settings.verify_timeout,
                origins=self.video_origins,
                max_redirects=self.settings.verify_max_redirects,
            )
            if tracing.enabled():
                # The origin only: a signed URL's query is a credential.
                attributes = {"vq.video.origin": _origin(str(video_url))}
                with tracing.span("vq.verify", kind="client", attributes=attributes):
                    await check()
            else:
                await check()
            self._emit(job.id, "verified", {"video_url": video_url, "job_type": job.job_type})
        return result

    def _progress_callback(self, job: ClaimedJob) -> ProgressCallback:
        return _Progress(self, job)

    async def _note_service(self, service: str, exc: BaseException) -> None:
        router = self.router
        if not router.record_outcome(service, default_category(exc)):
            return
        detail = (
            f"circuit open after {router.breaker_threshold} failures in a row "
            f"({type(exc).__name__}: {exc})"[:500]
        )
        log.warning("service %s: %s; its jobs wait in the queue", service, detail)
        # Recorded like a failed health check, so the service_unhealthy alert and the
        # admin page see it too; the next passing check closes the circuit.
        types = sorted(t for t, s in router.routes().items() if s == service)
        try:
            await self.store.record_service_health(service, False, detail, types)
        except _DB_ERRORS as db_exc:
            log.warning("could not record the open circuit of %s (%s)", service, db_exc)

    # -- aborting ---------------------------------------------------------------------

    def abort(self, job_id: uuid.UUID, reason: str) -> None:
        """Stop a running job: ``cancel`` (an operator asked), ``timeout``, ``lease_lost``,
        ``shutdown``."""
        task = self.tasks.get(job_id)
        if task is None or task.done() or job_id in self.aborting:
            return
        self.aborting[job_id] = reason
        task.cancel()

    async def _aborted(self, job: ClaimedJob) -> None:
        reason = self.aborting.pop(job.id, "shutdown")
        if reason == "cancel":
            done = await self._guard(lambda: self.store.mark_cancelled(self.worker_id, job.id))
            if done:
                self._emit(job.id, "cancelled", self._details(job))
        elif reason == "lease_lost":
            log.warning("job %s: lease lost to another worker; result discarded", job.id)
        # "shutdown": the worker releases the job back to the queue itself.

    # -- outcomes ----------------------------------------------------------------------

    async def _failed(
        self, job: ClaimedJob, exc: BaseException, duration: float | None = None
    ) -> None:
        category = default_category(exc)
        refined = self.pm.hook.vq_categorise_error(exc=exc, job=job, category=category)
        if refined is not None:
            category = ErrorCategory(refined)
        attempt = job.retry_count + 1
        retryable = category.retryable and not (isinstance(exc, ServiceError) and exc.permanent)
        will_retry = retryable and job.retry_count < job.max_retries
        delay: float | None = None
        if will_retry:
            s = self.settings
            default = retry_delay(exc, attempt, s.retry_base_delay, s.retry_max_delay)
            chosen = self.pm.hook.vq_retry_delay(
                exc=exc, job=job, category=category, attempt=attempt, default=default
            )
            delay = default if chosen is None else max(0.0, float(chosen))
        record = error_record(exc, category, attempt, retryable)
        record["will_retry"] = will_retry
        tracing.failed(category.value, record["message"])
        status = await self.store.fail(self.worker_id, job.id, record, delay)
        if status is None:
            return
        details = self._details(
            job, category=category.value, error=record["message"], attempt=attempt
        )
        if duration is not None:
            details["duration_s"] = round(duration, 6)
        if status is JobStatus.QUEUED and delay is not None:
            details["retry_in_s"] = round(delay, 3)
            self._emit(job.id, "retry_scheduled", details)
            asyncio.get_running_loop().call_later(delay, self._wake)
        else:
            self._emit(job.id, "failed", details)

    def completed(
        self, batch: Sequence[tuple[uuid.UUID, dict[str, Any]]], done: set[uuid.UUID]
    ) -> None:
        """Report the outcome of a batch completion write."""
        if self._completing:
            for job_id, _ in batch:
                span = self._completing.pop(job_id, None)
                if span is not None:
                    tracing.end_span(span, None if job_id in done else "lease lost")
        for job_id, result in batch:
            started = self._started.pop(job_id, None)
            if job_id not in done:
                log.warning("job %s finished but its lease was lost; not recorded", job_id)
                continue
            details: dict[str, Any] = {"result": result}
            if started is not None:
                details["duration_s"] = round(time.monotonic() - started[0], 6)
                details["job_type"] = started[1]
            self._emit(job_id, "completed", details)

    async def _guard(self, action: Callable[[], Awaitable[T]]) -> T | None:
        """Retry a database write until it lands or the lease is surely gone."""
        deadline = time.monotonic() + self.settings.lease_seconds
        backoff = 0.05
        while True:
            try:
                return await action()
            except _DB_ERRORS as exc:
                if time.monotonic() > deadline:
                    log.error("giving up a write after %s; lease recovery will requeue", exc)
                    return None
                log.warning("database write failed (%s); retrying", exc)
                await asyncio.sleep(backoff)  # back off from a failing database
                backoff = min(backoff * 2, 2.0)

    # -- observing --------------------------------------------------------------------

    def _details(self, job: ClaimedJob, **extra: Any) -> dict[str, Any]:
        details: dict[str, Any] = {"job_type": job.job_type, "attempt": job.retry_count + 1}
        details.update(extra)
        return details

    @staticmethod
    def _wait_s(job: ClaimedJob) -> float:
        # Epoch seconds: a third of the cost of subtracting aware datetimes, per job.
        return max(0.0, time.time() - job.created_at.timestamp())

    async def close_services(self) -> None:
        """Close every service's connections and the verification client."""
        await self.http.aclose()
        for service in self.router.services.values():
            try:
                await service.aclose()
            except Exception:
                log.exception("closing service %s failed", service.name)


class _Progress:
    """A job's progress callback: stores and announces each report, throttled.

    An object with slots rather than a closure: one is made for every job, and most
    jobs of a fast queue never report progress.
    """

    __slots__ = ("at", "job", "runner", "stage")

    def __init__(self, runner: JobRunner, job: ClaimedJob) -> None:
        self.runner = runner
        self.job = job
        self.at = 0.0
        self.stage: str | None = None

    async def __call__(self, percent: float, stage: str) -> None:
        # Throttle a chatty renderer, but never lose a new stage or the end.
        now = time.monotonic()
        same_stage = stage == self.stage
        if same_stage and percent < 100 and now - self.at < PROGRESS_MIN_INTERVAL:
            return
        self.at, self.stage = now, stage
        runner, job = self.runner, self.job
        try:
            await runner.store.update_progress(runner.worker_id, job.id, percent, stage)
        except _DB_ERRORS as exc:
            log.warning("job %s: progress not stored (%s)", job.id, exc)
            return
        runner._emit(
            job.id, "progress", {"percent": percent, "stage": stage, "job_type": job.job_type}
        )
