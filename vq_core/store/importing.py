"""``vq import``: the rows of a first-version ``jobs`` table moved into ``vq.jobs`` (SQL
in ``sql/queries/import.sql``; docs/platform.md, "Importing the first version's jobs").

The first version of the queue kept one table, ``jobs``, with ``job_type``, ``priority``
as a name (``urgent``, ``high``, ``normal``, ``low``), ``status``, ``payload``,
``retry_count``, ``max_retries`` and ``error_message``; an ``id``; and, when present,
``result``, ``video_url`` and the ``created_at``/``updated_at``/``started_at``/
``completed_at`` times. Each row becomes one vq job:

* ``pending``, ``queued`` and ``retrying`` become ``queued``, claimable at once, in
  their place (``run_at`` is their creation time). ``processing`` and ``running``
  become ``queued`` too: the first version's worker that held them is not vq's, and
  nothing would ever finish them (stop the first version's workers before importing).
* ``completed`` stays completed with its result (the ``result`` column, else the video
  fields of ``video_url`` or of the payload); ``failed`` stays failed with its
  ``error_message`` as the error (``{"message": ..., "type": "UNKNOWN"}``);
  ``cancelled`` (or ``canceled``) stays cancelled.
* The job type, priority, payload and retry limit pass the same checks as a
  submission (``JobRequest``). A row that fails one, or whose status is not one of the
  above, is refused with its reason; it never stops the import.

A run is one transaction: all the rows it imports, or none. Each job's idempotency key
is ``import:<schema>.<table>:<id>``, so a second run finds every row already there and
imports nothing twice.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from vq_core.db.queries import sql
from vq_core.errors import InvalidInput
from vq_core.models import Actor, JobStatus
from vq_core.store.records import export

#: The columns a first-version table must have.
REQUIRED_COLUMNS = (
    "id",
    "job_type",
    "priority",
    "status",
    "payload",
    "retry_count",
    "max_retries",
    "error_message",
)
#: Text columns read when present.
OPTIONAL_TEXT_COLUMNS = ("result", "video_url")
#: Time columns read when present (a date/time type, read as timestamptz).
OPTIONAL_TIME_COLUMNS = ("created_at", "updated_at", "started_at", "completed_at")

#: The first version's statuses (compared in lower case) and what each becomes.
STATUS_MAP: dict[str, JobStatus] = {
    "pending": JobStatus.QUEUED,
    "queued": JobStatus.QUEUED,
    "retrying": JobStatus.QUEUED,
    # Its worker is the first version's, gone or about to be: run it again in vq.
    "processing": JobStatus.QUEUED,
    "running": JobStatus.QUEUED,
    "completed": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
    "canceled": JobStatus.CANCELLED,
}

_Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

#: Rows read and written per round trip: large enough that 10,000 rows take a few.
BATCH_SIZE = 2000

_VIDEO_FIELDS = ("video_url", "thumbnail_url", "duration")
_PLAIN_NAME = r"[A-Za-z_][A-Za-z0-9_$]*"
_QUOTED_NAME = r'"(?:[^"]|"")+"'
_TABLE_NAME = re.compile(rf"^({_PLAIN_NAME}|{_QUOTED_NAME})\.({_PLAIN_NAME}|{_QUOTED_NAME})$")
_NO_ERROR_MESSAGE = "failed in the first version, which recorded no error_message"


def parse_table_name(text: str) -> tuple[str, str]:
    """The schema and table of ``SCHEMA.TABLE`` as PostgreSQL reads them: a plain name
    folds to lower case, a double-quoted one is taken as written (``""`` is a quote).
    ``InvalidInput`` naming ``--table`` otherwise."""
    match = _TABLE_NAME.match(text)
    if match is None or "\x00" in text:
        raise InvalidInput(f"--table: expected SCHEMA.TABLE (e.g. public.jobs), got {text[:100]!r}")
    schema, table = (_unquote(part) for part in match.groups())
    return schema, table


def _unquote(part: str) -> str:
    if part.startswith('"'):
        return part[1:-1].replace('""', '"')
    return part.lower()


if TYPE_CHECKING:
    from vq_core.store.records.importing import (
        IMPORTED_STATUSES as IMPORTED_STATUSES,
    )
    from vq_core.store.records.importing import (
        ImportedJob as ImportedJob,
    )
    from vq_core.store.records.importing import (
        ImportRefusal as ImportRefusal,
    )
    from vq_core.store.records.importing import (
        ImportReport as ImportReport,
    )


def __getattr__(name: str) -> Any:
    # The records are made on first use (vq_core.store.records says why).
    return export("importing", __name__, name)


def import_key(table: str, row_id: str) -> str:
    """The idempotency key of an imported row: ``import:<schema>.<table>:<id>``."""
    return f"import:{table}:{row_id}"


def map_first_version_row(row: dict[str, Any], table: str, actor: Actor) -> ImportedJob | str:
    """A first-version row as vq job values, or the reason it cannot be imported.

    ``row`` holds ``import_read_rows``' columns: every value text (or ``None``), the
    times ``datetime``.
    """
    # Here, not at the top: the store's other commands (``vq stats``) need no validation.
    from pydantic import ValidationError

    from vq_core.store.records.importing import ImportedJob
    from vq_core.validation import JobRequest, describe_validation_error, parse_payload

    old_id = row["id"]
    if old_id is None:
        return "id: null (the import needs it to import the row once)"
    old_status = (row["status"] or "").strip().lower()
    status = STATUS_MAP.get(old_status)
    if status is None:
        known = ", ".join(STATUS_MAP)
        return f"status: {row['status']!r} is not a first-version status ({known})"
    try:
        payload = {} if row["payload"] is None else parse_payload(row["payload"])
        retry_count = _count(row["retry_count"], "retry_count", default=0)
        max_retries = _count(row["max_retries"], "max_retries", default=None)
        request = JobRequest.model_validate(
            {
                "job_type": row["job_type"],
                "priority": (row["priority"] or "").strip().lower() or None,
                "payload": payload,
                "max_retries": max_retries,
            }
        )
        job = request.to_new_job()
        result = _json_object(row["result"], "result")
    except ValidationError as exc:
        return describe_validation_error(exc)
    except InvalidInput as exc:
        return str(exc)
    details: dict[str, Any] = {
        "imported_from": table,
        "first_version_id": old_id,
        "first_version_status": row["status"],
        **actor.to_dict(),
    }
    error_message = row["error_message"]
    error: dict[str, Any] | None = None
    job_payload = job.payload
    if status is JobStatus.COMPLETED:
        result = _completed_result(result, row["video_url"], job_payload)
        # vq keeps the video fields in the payload too (as complete_jobs does).
        job_payload = job_payload | {k: result[k] for k in _VIDEO_FIELDS if result.get(k)}
        if error_message is not None:
            # A completed job has no error in vq; an earlier attempt's stays in the history.
            details["first_version_error_message"] = error_message
    else:
        if result is not None:
            details["first_version_result"] = result
        result = None
        if error_message is not None or status is JobStatus.FAILED:
            error = {"message": error_message or _NO_ERROR_MESSAGE, "type": "UNKNOWN"}
    final = status is not JobStatus.QUEUED
    key = import_key(table, old_id)
    values = {
        "idempotency_key": key,
        "job_type": job.job_type,
        "priority": int(job.priority),
        "status": status.value,
        "payload": job_payload,
        "result": result,
        "error": error,
        "retry_count": retry_count,
        "max_retries": job.max_retries,
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        # A queued job starts afresh; a finished one keeps when it ran.
        "started_at": _iso(row["started_at"]) if final else None,
        "completed_at": _iso(row["completed_at"]) if final else None,
        "details": details,
    }
    return ImportedJob(key, status, values)


def _count(text: str | None, name: str, default: int | None) -> int | None:
    if text is None:
        return default
    try:
        value = int(text.strip())
    except ValueError:
        raise InvalidInput(f"{name}: {text[:40]!r} is not a whole number") from None
    if value < 0:
        raise InvalidInput(f"{name}: {value} is negative")
    return value


def _json_object(text: str | None, name: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidInput(f"{name}: not valid JSON") from None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"{name}: not a JSON object")
    return value


def _completed_result(
    result: dict[str, Any] | None, video_url: str | None, payload: dict[str, Any]
) -> dict[str, Any]:
    out = dict(result or {})
    if video_url and not out.get("video_url"):
        out["video_url"] = video_url
    if not out.get("video_url") and payload.get("video_url"):
        # The first version kept the video in the payload only.
        out.update({k: payload[k] for k in _VIDEO_FIELDS if payload.get(k) is not None})
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class JobImport:
    """``vq import``; part of ``Store``."""

    pool: asyncpg.Pool
    default_max_retries: int

    async def import_first_version(
        self, table: str, actor: Actor, *, dry_run: bool = False
    ) -> ImportReport:
        """Import the rows of the first-version table ``table`` (``SCHEMA.TABLE``) into
        vq, in one transaction; with ``dry_run``, only count what would happen (a
        read-only transaction: nothing changes).

        ``InvalidInput`` for a name that is not ``SCHEMA.TABLE``, a table that does
        not exist, is vq's own, or lacks the first version's columns (all named).
        """
        from vq_core.store.records.importing import ImportReport

        schema, name = parse_table_name(table)
        if schema == "vq":
            raise InvalidInput("--table: the tables of schema vq are vq's own; nothing to import")
        async with self.pool.acquire() as conn, conn.transaction(readonly=dry_run):
            found = await conn.fetchrow(sql("import_find_table"), schema, name)
            if found is None or found["kind"] not in ("r", "p", "v", "m", "f"):
                raise InvalidInput(f"--table: no table {schema}.{name} in this database")
            label = f"{found['schema_name']}.{found['table_name']}"
            query = await _read_query(conn, found["oid"], found["quoted"], label)
            report = ImportReport(table=label, dry_run=dry_run)
            seen: set[str] = set()
            cursor = await conn.cursor(query)
            while rows := await cursor.fetch(BATCH_SIZE):
                batch = self._map_batch(rows, label, actor, report, seen)
                if batch:
                    done = await self._write_batch(conn, batch, dry_run)
                    for mapped in batch:
                        counts = report.imported if mapped.key in done else report.already
                        counts[mapped.status.value] += 1
        return report

    def _map_batch(
        self,
        rows: list[asyncpg.Record],
        label: str,
        actor: Actor,
        report: ImportReport,
        seen: set[str],
    ) -> list[ImportedJob]:
        from vq_core.store.records.importing import ImportRefusal

        batch = []
        for record in rows:
            row = dict(record)
            report.rows += 1
            mapped = map_first_version_row(row, label, actor)
            if isinstance(mapped, str):
                report.refused.append(ImportRefusal(row["id"], row["status"], mapped))
            elif mapped.key in seen:
                # Not a primary key: a second row of the same id would share its job.
                reason = "id: another row of the table has the same id (imported once)"
                report.refused.append(ImportRefusal(row["id"], row["status"], reason))
            else:
                seen.add(mapped.key)
                batch.append(mapped)
        return batch

    async def _write_batch(self, conn: _Conn, batch: list[ImportedJob], dry_run: bool) -> set[str]:
        """The keys of ``batch`` this run imports (on a dry run: would import)."""
        keys = [m.key for m in batch]
        if dry_run:
            existing = await conn.fetch(sql("import_existing_keys"), keys)
            return set(keys) - {r["idempotency_key"] for r in existing}
        rows = await conn.fetch(
            sql("import_jobs"), [m.values for m in batch], self.default_max_retries
        )
        return {r["idempotency_key"] for r in rows}


async def _read_query(conn: _Conn, oid: int, quoted: str, label: str) -> str:
    """``import_read_rows`` for this table: ``quoted`` is PostgreSQL's quoting of its name,
    each optional column its cast or a typed NULL."""
    columns = {r["name"]: r for r in await conn.fetch(sql("import_table_columns"), oid)}
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InvalidInput(
            f"--table: {label} lacks the first version's column(s) {', '.join(missing)} "
            f"(vq import needs {', '.join(REQUIRED_COLUMNS)}; it reads "
            f"{', '.join(OPTIONAL_TEXT_COLUMNS + OPTIONAL_TIME_COLUMNS)} when present)"
        )
    fill = {"table": quoted}
    for name in OPTIONAL_TEXT_COLUMNS:
        fill[name] = f"old.{name}::text" if name in columns else "NULL::text"
    for name in OPTIONAL_TIME_COLUMNS:
        column = columns.get(name)
        if column is not None and column["category"] != "D":
            raise InvalidInput(
                f"--table: {label}.{name} is {column['type']}, not a date/time; "
                "rename or drop the column to import without it"
            )
        fill[name] = f"old.{name}::timestamptz" if column is not None else "NULL::timestamptz"
    return sql("import_read_rows").format(**fill)
