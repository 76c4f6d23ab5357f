"""The first version's job documents and rows, without a database: what
``parse_job_request`` (the API's and ``vq submit``'s check) accepts of them, how
``vq import`` reads a table name and maps a row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from vq_core.errors import InvalidInput
from vq_core.models import Actor, JobStatus, Priority
from vq_core.store.importing import map_first_version_row, parse_table_name
from vq_core.validation import parse_job_request

ACTOR = Actor("ops", "cli")


def test_a_first_version_document_is_a_new_job() -> None:
    job = parse_job_request(
        {
            "job_type": "doubt",
            "priority": "high",
            "status": "queued",
            "payload": {"question": "Why?"},
            "retry_count": 0,
            "max_retries": 2,
            "error_message": None,
        }
    )
    assert (job.job_type, job.priority, job.payload, job.max_retries) == (
        "doubt",
        Priority.HIGH,
        {"question": "Why?"},
        2,
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("status", "running"), ("status", "Queued"), ("retry_count", 1), ("error_message", "x")],
)
def test_a_first_version_field_saying_anything_else_is_refused(field: str, value: Any) -> None:
    with pytest.raises(InvalidInput, match=rf"^{field}: a submitted job"):
        parse_job_request({"job_type": "doubt", field: value})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("public.jobs", ("public", "jobs")),
        ("Public.JOBS", ("public", "jobs")),
        ('"Old Queue"."Jobs"', ("Old Queue", "Jobs")),
        ('legacy."say ""hi"""', ("legacy", 'say "hi"')),
    ],
)
def test_table_names_read_as_postgresql_reads_them(text: str, expected: tuple[str, str]) -> None:
    assert parse_table_name(text) == expected


@pytest.mark.parametrize(
    "text", ["jobs", "a.b.c", "public.", ".jobs", "public.jobs;", "public.1jobs", '"a.b', ""]
)
def test_other_table_names_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match=r"^--table: expected SCHEMA.TABLE"):
        parse_table_name(text)


def row(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "1",
        "job_type": "doubt",
        "priority": "normal",
        "status": "pending",
        "payload": '{"question": "q"}',
        "retry_count": "0",
        "max_retries": "3",
        "error_message": None,
        "result": None,
        "video_url": None,
        "created_at": datetime(2025, 1, 1, tzinfo=UTC),
        "updated_at": None,
        "started_at": datetime(2025, 1, 1, 0, 1, tzinfo=UTC),
        "completed_at": None,
    }
    return base | values


@pytest.mark.parametrize(
    ("status", "becomes"),
    [
        ("pending", JobStatus.QUEUED),
        (" Queued ", JobStatus.QUEUED),
        ("processing", JobStatus.QUEUED),
        ("running", JobStatus.QUEUED),
        ("retrying", JobStatus.QUEUED),
        ("completed", JobStatus.COMPLETED),
        ("FAILED", JobStatus.FAILED),
        ("canceled", JobStatus.CANCELLED),
    ],
)
def test_statuses_map(status: str, becomes: JobStatus) -> None:
    mapped = map_first_version_row(row(status=status), "public.jobs", ACTOR)
    assert not isinstance(mapped, str), mapped
    assert mapped.status is becomes and mapped.values["status"] == becomes.value
    assert mapped.key == "import:public.jobs:1"
    # A job queued again starts afresh; a finished one keeps when it ran.
    started = mapped.values["started_at"]
    assert (started is None) == (becomes is JobStatus.QUEUED)


def test_a_completed_row_takes_its_video_from_the_payload_when_nothing_else_has_it() -> None:
    payload = '{"question": "q", "video_url": "http://127.0.0.1:9/v.mp4", "duration": 5}'
    mapped = map_first_version_row(
        row(status="completed", payload=payload, error_message="first try failed"),
        "public.jobs",
        ACTOR,
    )
    assert not isinstance(mapped, str), mapped
    assert mapped.values["result"] == {"video_url": "http://127.0.0.1:9/v.mp4", "duration": 5}
    assert mapped.values["error"] is None
    assert mapped.values["details"]["first_version_error_message"] == "first try failed"


def test_a_queued_row_keeps_its_last_error() -> None:
    mapped = map_first_version_row(
        row(status="retrying", retry_count="2", error_message="timeout"), "public.jobs", ACTOR
    )
    assert not isinstance(mapped, str), mapped
    assert mapped.values["error"] == {"message": "timeout", "type": "UNKNOWN"}
    assert mapped.values["retry_count"] == 2


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"id": None}, "id: null"),
        ({"status": "lost"}, "status: 'lost' is not a first-version status"),
        ({"priority": None}, "priority: Input should be"),
        ({"payload": "{"}, "payload: not valid JSON"),
        ({"payload": '"text"'}, "payload: Input should be a valid dictionary"),
        ({"retry_count": "1.5"}, "retry_count: '1.5' is not a whole number"),
        ({"max_retries": "101"}, "max_retries: Input should be less than or equal to 100"),
        ({"status": "completed", "result": "[1]"}, "result: not a JSON object"),
    ],
)
def test_a_bad_row_gives_its_reason(values: dict[str, Any], reason: str) -> None:
    mapped = map_first_version_row(row(**values), "public.jobs", ACTOR)
    assert isinstance(mapped, str) and mapped.startswith(reason), mapped
