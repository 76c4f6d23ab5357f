"""The query KEDA scales the workers on (deploy/kubernetes/keda.yaml), run as KEDA runs
it: its text from the ScaledObject, on a database holding ready, scheduled, running and
finished jobs, as the read-only role the manifests describe. It counts the ready jobs
only, and it is the number vq exports as vq_queue_depth."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import yaml

from vq_core.metrics import QueueCollector, read_snapshot
from vq_core.models import NewJob
from vq_core.store import Store

KEDA = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "keda.yaml"


def scaledobject_query() -> str:
    (scaled,) = [
        d for d in yaml.safe_load_all(KEDA.read_text("utf-8")) if d["kind"] == "ScaledObject"
    ]
    (trigger,) = scaled["spec"]["triggers"]
    return str(trigger["metadata"]["query"])


@pytest.fixture
async def keda_conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection as a role with only what keda.yaml grants vq_keda (roles are
    server-wide: a name of its own, dropped afterwards)."""
    role = f"vq_keda_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"CREATE ROLE {role} NOLOGIN")
        await admin.execute(f"GRANT USAGE ON SCHEMA vq TO {role}")
        await admin.execute(f"GRANT SELECT ON vq.jobs TO {role}")
        conn = await asyncpg.connect(dsn)
        await conn.execute(f"SET ROLE {role}")
        try:
            yield conn
        finally:
            await conn.close()
    finally:
        await admin.execute(f"DROP OWNED BY {role}")
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


async def test_the_scaledobject_counts_ready_jobs_only_as_vq_queue_depth_does(
    store: Store, keda_conn: asyncpg.Connection
) -> None:
    query = scaledobject_query()
    assert await keda_conn.fetchval(query) == 0

    now = datetime.now(UTC)
    await store.enqueue_many([NewJob("doubt") for _ in range(6)])  # ready now
    await store.enqueue(NewJob("doubt", run_at=now - timedelta(minutes=5)))  # due: ready
    await store.enqueue(NewJob("doubt", run_at=now + timedelta(hours=1)))  # scheduled
    await store.enqueue(NewJob("manim", run_at=now + timedelta(days=1)))  # scheduled
    running = await store.claim("w", {"doubt": "noop"}, 3, 30)  # 3 of the ready ones
    assert len(running) == 3
    await store.complete_many("w", [(running[0].id, {})])  # finished: not counted
    cancelled = await store.enqueue(NewJob("manim"))
    await store.cancel(cancelled.id)

    # 7 ready - 3 claimed = 4; the scheduled, running, completed and cancelled are not.
    depth = await keda_conn.fetchval(query)
    assert depth == 4
    stats = await store.stats()
    assert stats["depth"] == depth and stats["scheduled"] == 2

    collector = QueueCollector()
    collector.snapshot = await read_snapshot(store)
    (gauge,) = [m for m in collector.collect() if m.name == "vq_queue_depth"]
    assert [s.value for s in gauge.samples] == [float(depth)]


async def test_the_query_is_refused_without_the_grant_it_documents(
    dsn: str, keda_conn: asyncpg.Connection
) -> None:
    # The role has SELECT on vq.jobs and nothing else: the grant is what makes it work.
    role = await keda_conn.fetchval("SELECT current_user")
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"REVOKE SELECT ON vq.jobs FROM {role}")
    finally:
        await admin.close()
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await keda_conn.fetchval(scaledobject_query())
