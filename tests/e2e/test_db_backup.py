"""``vq db backup`` and ``vq db restore`` as processes: a backup of the embedded server
restored into a fresh data directory, and one of the configured PostgreSQL restored into
another empty database, each with every job, status and history event; the refusals."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from vq_core import db
from vq_core.db import migrations
from vq_core.db.embedded import EmbeddedError, embedded_dsn, stop_embedded
from vq_core.models import Actor, JobStatus, NewJob
from vq_core.store import Store

VQ = [sys.executable, "-m", "vq_core.cli"]
WORKER = "backup-test-worker"


def _env(*, data_dir: Path | None = None, database_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VQ_DATABASE_URL"}
    env["VQ_CONFIG"] = "/nonexistent/vq.toml"
    if data_dir is not None:
        env["VQ_DATA_DIR"] = str(data_dir)
    if database_url is not None:
        env["VQ_DATABASE_URL"] = database_url
    return env


def _vq(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VQ, *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def _one_line_error(run: subprocess.CompletedProcess[str]) -> str:
    """The single line a refused command prints (exit 2, no traceback)."""
    assert run.returncode == 2, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


async def _fill(dsn: str) -> dict[uuid.UUID, JobStatus]:
    """Jobs in every state, each with its history: queued, running, completed, failed
    (for good), cancelled; one waits for a retry."""
    pool = await db.create_pool(dsn, 1, 2)
    store = Store(pool)
    try:
        await store.register_worker(WORKER, "host", os.getpid(), 4, ["render"], 30.0)
        ids = [
            (await store.enqueue(NewJob("render", {"n": n}, group_key=f"student-{n % 2}"))).id
            for n in range(6)
        ]
        claimed = [c.id for c in await store.claim(WORKER, {"render": "noop"}, 4, 30.0)]
        assert len(claimed) == 4
        await store.complete_many(WORKER, [(claimed[0], {"video_url": "http://127.0.0.1/v"})])
        await store.fail(WORKER, claimed[1], {"type": "INVALID_INPUT", "message": "no"}, None)
        await store.fail(WORKER, claimed[2], {"type": "TIMEOUT", "message": "slow"}, 3600.0)
        queued = [i for i in ids if i not in claimed]
        await store.cancel(queued[0], actor=Actor("ops", "cli"))
        return {j.id: j.status for j in [await store.get_job(i) for i in ids]}
    finally:
        await store.close()


async def _snapshot(dsn: str) -> dict[str, list[dict[str, Any]]]:
    """Every job and every history event, column by column."""
    conn = await asyncpg.connect(dsn)
    try:
        jobs = await conn.fetch("SELECT * FROM vq.jobs ORDER BY id")
        events = await conn.fetch("SELECT * FROM vq.job_events ORDER BY id")
        migrated = await conn.fetch("SELECT version FROM vq.schema_migrations ORDER BY 1")
        return {
            "jobs": [dict(r) for r in jobs],
            "events": [dict(r) for r in events],
            "migrations": [dict(r) for r in migrated],
        }
    finally:
        await conn.close()


async def _still_works(dsn: str) -> None:
    """The restored database takes new jobs: its identity sequences came along too."""
    pool = await db.create_pool(dsn, 1, 2)
    store = Store(pool)
    try:
        new = await store.enqueue(NewJob("render", {"n": 99}))
        assert new.created
        await store.cancel(new.id, actor=Actor("ops", "cli"))
    finally:
        await store.close()


def _check_same(source: dict[str, Any], restored: dict[str, Any], statuses: dict[Any, Any]) -> None:
    assert restored == source
    assert {r["id"]: JobStatus(r["status"]) for r in restored["jobs"]} == statuses
    assert {JobStatus(r["status"]) for r in restored["jobs"]} == {
        JobStatus.QUEUED,
        JobStatus.RUNNING,
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
    }
    assert len(restored["events"]) > len(restored["jobs"])


@contextlib.contextmanager
def _embedded(data_dir: Path) -> Iterator[None]:
    """Whatever a test leaves running on ``data_dir`` is stopped at its end."""
    try:
        yield
    finally:
        with contextlib.suppress(EmbeddedError):
            stop_embedded(data_dir)


@pytest.mark.embedded
@pytest.mark.slow
async def test_an_embedded_backup_restores_into_a_fresh_data_directory(
    embedded_tmp: Path, empty_dsn: str
) -> None:
    first, fresh = embedded_tmp / "first", embedded_tmp / "fresh"
    dump = embedded_tmp / "vq.dump"
    with _embedded(first), _embedded(fresh):
        dsn = await asyncio.to_thread(embedded_dsn, first)
        conn = await db.connect(dsn)
        try:
            await migrations.migrate(conn)
        finally:
            await conn.close()
        statuses = await _fill(dsn)
        source = await _snapshot(dsn)

        backed_up = _vq("db", "backup", str(dump), "--json", env=_env(data_dir=first))
        assert backed_up.returncode == 0, backed_up.stderr
        report = json.loads(backed_up.stdout)
        assert report["embedded"] is True
        assert (report["jobs"], report["events"]) == (6, len(source["events"]))
        # The embedded server is read with its own binaries: the client is its version.
        assert Path(report["pg_dump"]).parent.parent.name.startswith("pginstall")
        assert report["pg_dump_version"].split(".")[0] == report["server_version"].split(".")[0]
        assert stat.S_IMODE(dump.stat().st_mode) == 0o600  # it holds password hashes
        assert report["bytes"] == dump.stat().st_size

        restored = _vq("db", "restore", str(dump), "--json", env=_env(data_dir=fresh))
        assert restored.returncode == 0, restored.stderr
        outcome = json.loads(restored.stdout)
        assert (outcome["jobs"], outcome["events"]) == (6, len(source["events"]))
        assert outcome["replaced"] is None
        assert outcome["pending_migrations"] == []
        fresh_dsn = await asyncio.to_thread(embedded_dsn, fresh)
        assert fresh_dsn != dsn
        _check_same(source, await _snapshot(fresh_dsn), statuses)

        # A second restore would overwrite what is there now: refused, one line.
        refused = _one_line_error(_vq("db", "restore", str(dump), env=_env(data_dir=fresh)))
        assert "already has a vq schema" in refused
        assert "--force" in refused

        # Forced, it replaces the schema, whatever was added since.
        await _still_works(fresh_dsn)
        forced = _vq("db", "restore", str(dump), "--force", env=_env(data_dir=fresh))
        assert forced.returncode == 0, forced.stderr
        assert "replacing the vq schema that was there (7 jobs," in forced.stdout
        _check_same(source, await _snapshot(fresh_dsn), statuses)
        await _still_works(fresh_dsn)

        # Into an older PostgreSQL than the backup's, pg_restore would fail half-way.
        conn = await asyncpg.connect(empty_dsn)
        try:
            target_major = int(await conn.fetchval("SHOW server_version_num")) // 10000
        finally:
            await conn.close()
        into_server = _vq("db", "restore", str(dump), env=_env(database_url=empty_dsn))
        if target_major < int(report["server_version"].split(".")[0]):
            assert "never an older one" in _one_line_error(into_server)
        else:
            assert into_server.returncode == 0, into_server.stderr
            _check_same(source, await _snapshot(empty_dsn), statuses)


async def test_a_backup_of_the_configured_server_restores_into_an_empty_database(
    dsn: str, empty_dsn: str, tmp_path: Path
) -> None:
    statuses = await _fill(dsn)
    source = await _snapshot(dsn)
    dump = tmp_path / "vq.dump"

    backed_up = _vq("db", "backup", str(dump), env=_env(database_url=dsn))
    assert backed_up.returncode == 0, backed_up.stderr
    lines = backed_up.stdout.splitlines()
    assert lines[0].startswith("backed up the vq schema of postgresql://")
    assert lines[0].endswith(f": 6 jobs, {len(source['events'])} history events")
    assert lines[1].startswith(f"to {dump} (")

    restored = _vq("db", "restore", str(dump), "--json", env=_env(database_url=empty_dsn))
    assert restored.returncode == 0, restored.stderr
    report = json.loads(restored.stdout)
    assert report["embedded"] is False
    # The client is at least as new as the pg_dump that wrote the archive.
    assert int(report["pg_restore_version"].split(".")[0]) >= int(report["dumped_by"].split(".")[0])
    _check_same(source, await _snapshot(empty_dsn), statuses)
    await _still_works(empty_dsn)


async def test_a_forced_restore_that_fails_keeps_the_schema_it_would_replace(
    dsn: str, server_dsn: str, tmp_path: Path
) -> None:
    """A backup granting rights to a role the target cluster lacks fails in pg_restore;
    the vq schema that was there is put back untouched."""
    role = f"vq_backup_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_dsn)
    source = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE ROLE "{role}"')
        await source.execute(f'GRANT USAGE ON SCHEMA vq TO "{role}"')
    finally:
        await source.close()
    dump = tmp_path / "vq.dump"
    try:
        await _fill(dsn)
        backed_up = _vq("db", "backup", str(dump), env=_env(database_url=dsn))
        assert backed_up.returncode == 0, backed_up.stderr
    finally:
        source = await asyncpg.connect(dsn)
        try:
            await source.execute(f'REVOKE ALL ON SCHEMA vq FROM "{role}"')
        finally:
            await source.close()
        await admin.execute(f'DROP ROLE "{role}"')
        await admin.close()

    await _still_works(dsn)  # the target is the source itself, one job more than the dump
    before = await _snapshot(dsn)
    failed = _vq("db", "restore", str(dump), "--force", env=_env(database_url=dsn))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: pg_restore failed (exit 1) (the vq schema that was there")
    assert role in last
    assert await _snapshot(dsn) == before
    conn = await asyncpg.connect(dsn)
    try:
        schemas = await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'vq%'")
    finally:
        await conn.close()
    assert [r["nspname"] for r in schemas] == ["vq"]


async def test_bad_input_exits_2_with_one_line(dsn: str, tmp_path: Path) -> None:
    env = _env(database_url=dsn)
    missing = _one_line_error(_vq("db", "restore", str(tmp_path / "absent.dump"), env=env))
    assert missing == f"Error: {tmp_path / 'absent.dump'}: no such file"

    junk = tmp_path / "junk.dump"
    junk.write_text("not an archive\n")
    assert "is not a backup vq db backup wrote" in _one_line_error(
        _vq("db", "restore", str(junk), env=env)
    )

    under_a_file = junk / "vq.dump"
    assert _one_line_error(_vq("db", "backup", str(under_a_file), env=env)) == (
        f"Error: cannot write {under_a_file}: {junk} is not a directory"
    )
    assert "is a directory" in _one_line_error(_vq("db", "backup", str(tmp_path), env=env))
    assert "exists; choose another name, or --force" in _one_line_error(
        _vq("db", "backup", str(junk), env=env)
    )
    assert junk.read_text() == "not an archive\n"  # left as it was

    nowhere = tmp_path / "no-data"
    empty = _one_line_error(
        _vq("db", "backup", str(tmp_path / "x.dump"), env=_env(data_dir=nowhere))
    )
    assert f"there is no embedded database in {nowhere / 'pgdata'}" in empty
    assert not nowhere.exists()  # nothing was started to find that out
