"""docs/services.md stays true: its plugin example runs on a real worker."""

from __future__ import annotations

import re
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.helpers import eventually, running_worker
from support.services import reference_server

from vq_core.config import Settings
from vq_core.models import Job, JobStatus, NewJob
from vq_core.plugins import collect_services, make_plugin_manager
from vq_core.store import Store
from vq_plugins.reference.reference_services import ReferenceServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "services.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[ReferenceServer]:
    with reference_server(tmp_path / "media") as server:
        yield server


async def test_the_plugin_example_runs_on_a_worker(
    store: Store, settings: Settings, dsn: str, reference: ReferenceServer
) -> None:
    module = types.ModuleType("docs_services_example")
    exec(compile(blocks("python")[0], str(DOC), "exec"), module.__dict__)
    configured = settings.model_copy(
        update={
            "plugin_config": {"acme": {"base_url": reference.url}},
            "breaker_threshold": 100,
        }
    )
    pm = make_plugin_manager(configured, load_entrypoints=False)
    pm.register(module)
    services = collect_services(pm, configured)
    assert list(services) == ["acme"]
    async with running_worker(store, configured, services, dsn, pm=pm):
        ok = await store.enqueue(NewJob("acme", {"question": "Why?", "length": 5}))
        done = await _final(store, ok.id)
        reference.set_faults(status=503, times=1)
        bad = await store.enqueue(NewJob("acme", {"question": "Why?", "length": 5}, max_retries=0))
        failed = await _final(store, bad.id)
    assert done.status is JobStatus.COMPLETED, done.error
    assert done.result is not None and done.result["video_url"].startswith(reference.url)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert (failed.error["type"], failed.error["service"]) == ("API_ERROR", "acme")
    assert reference.requests("/render")[0]["idempotency_key"] == str(ok.id)


async def _final(store: Store, job_id: uuid.UUID) -> Job:
    async def check() -> Job | None:
        job = await store.get_job(job_id)
        return job if job.status in (JobStatus.COMPLETED, JobStatus.FAILED) else None

    return await eventually(check, timeout=30)
