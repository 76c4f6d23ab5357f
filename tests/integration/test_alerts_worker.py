"""Alerts and health gating with real workers, real loopback servers and a real database."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from support.alert_receivers import HttpReceiver, http_receiver
from support.helpers import ScriptedService, eventually, running_worker

from vq_core import hookimpl
from vq_core.config import Settings
from vq_core.errors import ServiceError
from vq_core.models import ClaimedJob, ErrorCategory, JobStatus, NewJob
from vq_core.plugins import PluginManager, make_plugin_manager
from vq_core.store import Store
from vq_core.video_service import ProgressCallback
from vq_core.worker.process import Worker
from vq_plugins.alert_sinks.alert_webhook import WebhookSink

SINK_PLUGINS = ("vq_plugins.alert_sinks.alert_log", "vq_plugins.alert_sinks.alert_webhook")


def alerting(settings: Settings, webhook_url: str, **alerts: Any) -> Settings:
    """Fast alert ticks and health checks, notifications to ``webhook_url``."""
    return settings.model_copy(
        update={
            "alerts": settings.alerts.model_copy(update={"interval": 0.05, **alerts}),
            "health_check_interval": 0.05,
            "health_check_timeout": 2.0,
            "plugin_config": {"webhook": {"url": webhook_url}},
        }
    )


def sink_plugins(settings: Settings) -> PluginManager:
    return make_plugin_manager(settings, SINK_PLUGINS, load_entrypoints=False)


class HttpHealthService:
    """Renders at once; healthy while ``GET {base}/health`` answers 2xx."""

    def __init__(self, base_url: str, job_types: tuple[str, ...] = ("doubt",)) -> None:
        self.name = "remote"
        self.job_types = job_types
        self.base_url = base_url
        self.calls: list[uuid.UUID] = []
        self._client = httpx.AsyncClient(timeout=2.0)

    async def render(self, job: ClaimedJob, progress: ProgressCallback) -> dict[str, Any]:
        self.calls.append(job.id)
        return {"ok": True}

    async def health(self) -> bool:
        response = await self._client.get(f"{self.base_url}/health")
        return response.is_success

    async def aclose(self) -> None:
        await self._client.aclose()


async def statuses(store: Store, ids: list[uuid.UUID]) -> list[JobStatus]:
    return [(await store.get_job(i)).status for i in ids]


async def all_in(store: Store, ids: list[uuid.UUID], status: JobStatus) -> bool:
    return all(s is status for s in await statuses(store, ids))


async def test_three_failures_in_a_row_fire_the_worker_alert(
    store: Store, settings: Settings, dsn: str
) -> None:
    async with http_receiver() as hook:
        cfg = alerting(settings, hook.url, cooldown=3600)
        service = ScriptedService()
        service.raise_for = lambda job: (
            # A service fault, failed for good at once: INVALID_INPUT would not count.
            ServiceError(ErrorCategory.API_ERROR, "renderer crashed", permanent=True)
            if job.payload.get("bad")
            else None
        )
        async with running_worker(store, cfg, {"scripted": service}, dsn, sink_plugins(cfg)) as w:
            bad = [(await store.enqueue(NewJob("scripted", {"bad": True}))).id for _ in range(2)]
            await eventually(lambda: all_in(store, bad, JobStatus.FAILED))
            await w.alerts.tick()  # evaluated after two failures: nothing to say yet
            assert hook.posts == []
            bad.append((await store.enqueue(NewJob("scripted", {"bad": True}))).id)
            await eventually(lambda: _posted(hook, f"worker_failures:{w.id}", "firing"))
            good = await store.enqueue(NewJob("scripted"))
            await eventually(lambda: all_in(store, [good.id], JobStatus.COMPLETED))
            await eventually(lambda: _posted(hook, f"worker_failures:{w.id}", "resolved"))
    assert hook.alert_keys() == [f"worker_failures:{w.id}"] * 2
    firing = hook.posts[0]
    assert firing["details"]["consecutive_failures"] == 3 and firing["details"]["threshold"] == 3


async def _posted(hook: HttpReceiver, key: str, state: str) -> bool:
    return key in hook.alert_keys(state)


async def test_unhealthy_service_keeps_its_jobs_queued_until_it_recovers(
    store: Store, settings: Settings, dsn: str
) -> None:
    async with http_receiver(healthy=False) as remote, http_receiver() as hook:
        cfg = alerting(settings, hook.url)
        service = HttpHealthService(remote.url)
        async with running_worker(store, cfg, {"remote": service}, dsn, sink_plugins(cfg)) as w:
            ids = [r.id for r in await store.enqueue_many([NewJob("doubt") for _ in range(3)])]
            w.wake()
            await eventually(lambda: _posted(hook, "service_unhealthy:remote", "firing"))
            # Several more health checks (and claim attempts) pass with the jobs queued.
            checks = remote.health_checks
            await eventually(lambda: _async(remote.health_checks >= checks + 5))
            assert await statuses(store, ids) == [JobStatus.QUEUED] * 3
            assert service.calls == []
            for job_id in ids:
                assert [e.event for e in await store.get_events(job_id)] == ["created"]

            remote.healthy = True  # no nudge: the next health check resumes claiming
            await eventually(lambda: all_in(store, ids, JobStatus.COMPLETED))
            await eventually(lambda: _posted(hook, "service_unhealthy:remote", "resolved"))
    assert sorted(service.calls) == sorted(ids)
    firing = next(p for p in hook.posts if p["state"] == "firing")
    assert firing["details"]["job_types"] == ["doubt"]
    assert firing["details"]["detail"] == "health check answered unhealthy"


async def _async(value: bool) -> bool:
    return value


async def test_a_hanging_sink_does_not_delay_jobs(
    store: Store, settings: Settings, dsn: str
) -> None:
    gate = asyncio.Event()
    async with http_receiver(hold=gate) as hanging, http_receiver() as hook:
        cfg = alerting(settings, hanging.url, depth_thresholds={"backlog": 2}, sink_timeout=60)
        pm = sink_plugins(cfg)
        pm.register(_SecondWebhook(hook.url), name="second-webhook")
        service = ScriptedService()
        async with running_worker(store, cfg, {"scripted": service}, dsn, pm):
            # Nobody renders "backlog": its depth fires an alert, whose webhook hangs.
            await store.enqueue_many([NewJob("backlog") for _ in range(3)])
            await eventually(lambda: _async(bool(hanging.requests) and bool(hook.posts)))
            ids = [r.id for r in await store.enqueue_many([NewJob("scripted")] * 20)]
            await eventually(lambda: all_in(store, ids, JobStatus.COMPLETED))
            # Every job finished while the first sink was still waiting for its answer.
            assert not gate.is_set() and len(hanging.requests) == 1
            gate.set()
    assert hook.alert_keys() == ["queue_depth:backlog"]


class _SecondWebhook:
    """Another webhook sink, registered as a separate plugin."""

    def __init__(self, url: str) -> None:
        self.url = url

    @hookimpl
    def vq_register_alert_sinks(self, settings: Settings) -> list[Any]:
        return [WebhookSink(self.url)]


@contextlib.asynccontextmanager
async def _workers(
    store: Store, settings: Settings, dsn: str, n: int
) -> AsyncIterator[list[Worker]]:
    async with contextlib.AsyncExitStack() as stack:
        workers = []
        for _ in range(n):
            services = {"scripted": ScriptedService()}
            pm = sink_plugins(settings)
            worker = running_worker(store, settings, services, dsn, pm)
            workers.append(await stack.enter_async_context(worker))
        yield workers


async def test_several_workers_send_each_alert_once(
    store: Store, settings: Settings, dsn: str
) -> None:
    async with http_receiver() as hook:
        cfg = alerting(settings, hook.url, cooldown=3600)
        await store.enqueue_many([NewJob("unrouted") for _ in range(25)])
        async with _workers(store, cfg, dsn, 4):
            await eventually(lambda: _posted(hook, "queue_depth:unrouted", "firing"))
            # Let the four workers evaluate many more times (last_seen keeps moving).
            await eventually(lambda: _seen_for(store, "queue_depth:unrouted", 1.0))
    assert hook.alert_keys() == ["queue_depth:unrouted"]


async def _seen_for(store: Store, key: str, seconds: float) -> bool:
    for row in await store.list_alerts():
        if row.key == key:
            return (row.last_seen - row.first_seen).total_seconds() >= seconds
    return False
