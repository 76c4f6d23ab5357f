"""Migrations: applied in order, recorded, idempotent, safe from two processes at once."""

from __future__ import annotations

import asyncio
import json

from vq_core import db
from vq_core.db import migrations
from vq_core.db.queries import merge_query_files, parse_queries, queries, sql
from vq_core.models import NewJob
from vq_core.store import Store


async def test_migrate_applies_all_then_nothing(empty_dsn: str) -> None:
    conn = await db.connect(empty_dsn)
    try:
        applied = await migrations.migrate(conn)
        assert [m.version for m in applied] == [
            m.version for m in migrations.available_migrations()
        ]
        assert await migrations.migrate(conn) == []
        assert await migrations.pending_migrations(conn) == []
        tables = {
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'vq'"
            )
        }
        assert {"jobs", "job_events", "job_queue_config", "workers", "schema_migrations"} <= tables
    finally:
        await conn.close()


async def test_upgrading_a_database_with_jobs_keeps_them_and_their_order(
    empty_dsn: str,
) -> None:
    conn = await db.connect(empty_dsn)
    pool = await db.create_pool(empty_dsn)
    store = Store(pool)
    try:
        assert [m.version for m in await migrations.migrate(conn, up_to=5)] == [1, 2, 3, 4, 5]
        # Inserted as the code of that version did: today's store writes newer columns.
        old = [
            await conn.fetchval(
                "INSERT INTO vq.jobs (job_type, payload)"
                " VALUES ('t', jsonb_build_object('n', $1::int)) RETURNING id",
                i,
            )
            for i in range(3)
        ]
        applied = await migrations.migrate(conn)
        assert applied[0].version == 6
        new = [(await store.enqueue(NewJob("t", {"n": i}))).id for i in range(3, 6)]
        listed = [j.id for j in (await store.list_jobs(limit=10)).jobs]
        # Made after the upgrade: newest first, exactly. Made before: all still there.
        assert listed[:3] == new[::-1] and set(listed[3:]) == set(old)
        claimed = await store.claim("w", {"t": "noop"}, 6, 30)
        assert {j.id for j in claimed} == set(old + new)
    finally:
        await pool.close()
        await conn.close()


async def test_0009_converts_the_values_it_now_refuses_and_loses_nothing(
    empty_dsn: str,
) -> None:
    """A live database may hold a NaN or infinite timeout and payloads that are not
    objects: the upgrade must not fail on them, nor leave them to fail every claim."""
    conn = await db.connect(empty_dsn)
    try:
        await migrations.migrate(conn, up_to=8)
        await conn.execute(
            "INSERT INTO vq.job_queue_config (job_type, timeout_s)"
            " VALUES ('nan', 'NaN'), ('inf', 'Infinity'), ('ok', 5)"
        )
        rows = await conn.fetch(
            "INSERT INTO vq.jobs (job_type, payload, status, retry_count) VALUES"
            " ('t', '[1, 2]', 'queued', 1), ('t', '\"str\"', 'completed', 0),"
            " ('t', 'null', 'running', 0), ('t', '{\"fine\": 1}', 'queued', 0) RETURNING id"
        )
        queued, completed, running, fine = (r["id"] for r in rows)
        applied = await migrations.migrate(conn)
        assert applied[0].version == 9
        timeouts = dict(await conn.fetch("SELECT job_type, timeout_s FROM vq.job_queue_config"))
        assert timeouts == {"nan": 600.0, "inf": 1e9, "ok": 5.0}
        jobs = {r["id"]: r for r in await conn.fetch("SELECT * FROM vq.jobs")}
        assert jobs[queued]["payload"] == {"invalid_payload": [1, 2]}
        assert jobs[queued]["status"] == "failed" and jobs[queued]["completed_at"] is not None
        error = jobs[queued]["error"]
        assert error["type"] == "INVALID_INPUT" and error["retryable"] is False
        assert error["message"] == "payload: must be a JSON object, not a JSON array"
        assert error["attempt"] == 2
        (event,) = await conn.fetch("SELECT * FROM vq.job_events WHERE job_id = $1", queued)
        assert event["event"] == "failed" and event["details"]["by"] == "migration 0009"
        assert event["details"]["message"] == error["message"]
        assert (jobs[completed]["status"], jobs[completed]["payload"]) == (
            "completed",
            {"invalid_payload": "str"},
        )
        assert (jobs[running]["status"], jobs[running]["payload"]) == (
            "running",
            {"invalid_payload": None},
        )
        assert (jobs[fine]["status"], jobs[fine]["payload"]) == ("queued", {"fine": 1})
        assert await conn.fetchval("SELECT count(*) FROM vq.job_events") == 1
    finally:
        await conn.close()


async def test_concurrent_migrations_do_not_collide(empty_dsn: str) -> None:
    conns = [await db.connect(empty_dsn) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrations.migrate(c) for c in conns))
        applied = [m.version for r in results for m in r]
        assert sorted(applied) == [m.version for m in migrations.available_migrations()]
        rows = await conns[0].fetch("SELECT version FROM vq.schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == sorted(applied)
    finally:
        for c in conns:
            await c.close()


def test_migration_versions_are_contiguous() -> None:
    versions = [m.version for m in migrations.available_migrations()]
    assert versions == list(range(1, len(versions) + 1))


def test_every_query_parses_and_names_are_unique() -> None:
    names = queries()
    assert "claim_jobs" in names and "enqueue_jobs" in names
    assert all(sql_text.strip() for sql_text in names.values())


def test_parse_queries_rejects_duplicates() -> None:
    import pytest

    with pytest.raises(ValueError, match="twice"):
        parse_queries("-- a --\nSELECT 1;\n-- a --\nSELECT 2;")


def test_a_name_in_two_files_is_an_error_naming_both() -> None:
    import pytest

    files = {
        "jobs.sql": "-- a --\nSELECT 1;",
        "users.sql": "-- b --\nSELECT 2;\n-- a --\nSELECT 3;",
    }
    with pytest.raises(ValueError, match=r"'a' is defined in both jobs.sql and users.sql"):
        merge_query_files(files)
    assert merge_query_files({"x.sql": "-- a --\nSELECT 1;", "y.sql": "-- b --\nSELECT 2;"}) == {
        "a": "SELECT 1",
        "b": "SELECT 2",
    }


async def test_claim_uses_the_partial_index(dsn: str) -> None:
    """The claim must walk jobs_claim_idx, not scan the table (pgqueuer's habit)."""
    conn = await db.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO vq.jobs (job_type, status, priority) "
            "SELECT 'noop', (ARRAY['completed','failed','queued'])[1 + g % 3]::vq.job_status, g % 4"
            " FROM generate_series(1, 30000) g"
        )
        await conn.execute("ANALYZE vq.jobs")
        # EXPLAIN without ANALYZE plans the UPDATE without running it. Both claim
        # orders: by priority (taking turns between groups), and the oldest first.
        for order, index in (
            ("priority, fair_seq, run_at", "jobs_claim_idx"),
            ("run_at", "jobs_ready_idx"),
        ):
            query = sql("claim_jobs").format(order=order)
            plan = await conn.fetchval(
                "EXPLAIN (FORMAT JSON) " + query, "w", ["noop"], ["noop"], 10, 30.0
            )
            assert index in json.dumps(plan)
            assert '"Relation Name": "jobs"' not in _seq_scans(plan)
    finally:
        await conn.close()


def _seq_scans(plan: object) -> str:
    """The JSON of every Seq Scan node in a plan."""
    found: list[object] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("Node Type") == "Seq Scan":
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(plan)
    return json.dumps(found)


async def test_job_ids_are_time_ordered_version_7(dsn: str) -> None:
    conn = await db.connect(dsn)
    try:
        ids = [await conn.fetchval("SELECT vq.uuid_v7()") for _ in range(50)]
        assert all(i.version == 7 for i in ids)
        assert len(set(ids)) == 50
        # The time comes first, to a quarter microsecond: calls a round trip apart are
        # strictly increasing, and the 48 leading bits are the clock's milliseconds.
        assert ids == sorted(ids)
        now_ms = await conn.fetchval("SELECT floor(date_part('epoch', clock_timestamp()) * 1000)")
        assert 0 <= now_ms - int(ids[-1].hex[:12], 16) < 60_000
    finally:
        await conn.close()


_CATALOG = {
    "columns": """
        SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity
          FROM information_schema.columns WHERE table_schema = 'vq'
         ORDER BY 1, 2""",
    "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'vq' ORDER BY 1",
    "constraints": """
        SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
          FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
         WHERE n.nspname = 'vq' ORDER BY 1, 2""",
    "functions": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid), p.prosrc
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'vq' ORDER BY 1""",
    "triggers": """
        SELECT t.tgname, pg_get_triggerdef(t.oid)
          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'vq' AND NOT t.tgisinternal ORDER BY 1""",
}


async def _catalog(dsn: str) -> dict[str, list[tuple[object, ...]]]:
    conn = await db.connect(dsn)
    try:
        return {k: [tuple(r) for r in await conn.fetch(q)] for k, q in _CATALOG.items()}
    finally:
        await conn.close()


async def test_schema_sql_matches_the_migrations(dsn: str, empty_dsn: str) -> None:
    """vq_core/sql/schema.sql, the readable current schema, is what the migrations build."""
    from importlib import resources

    schema = resources.files("vq_core").joinpath("sql/schema.sql").read_text()
    conn = await db.connect(empty_dsn)
    try:
        await conn.execute(schema)
    finally:
        await conn.close()
    migrated, documented = await _catalog(dsn), await _catalog(empty_dsn)
    for part in _CATALOG:
        assert documented[part] == migrated[part], f"schema.sql differs in {part}"
