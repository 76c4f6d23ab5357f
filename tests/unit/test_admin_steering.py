"""The pure parts of the admin page's steering (issue 11): history lines, attempts,
invalid input, the types form, bulk wording, the scheduled card."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from vq_core.errors import InvalidInput
from vq_core.models import ErrorCategory, JobEvent, JobFilter, JobStatus
from vq_ui.admin import format as fmt
from vq_ui.admin.bulk import question
from vq_ui.admin.overview import next_run
from vq_ui.admin.types import parse_form

AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
JOB = uuid.uuid4()


def _event(n: int, event: str, worker: str | None = None, **details: object) -> JobEvent:
    return JobEvent(n, JOB, event, AT + timedelta(seconds=n), worker, details or None)


def test_history_lines_are_readable_and_keep_stacks_folded_for_admins_only() -> None:
    failure = {"type": "API_ERROR", "message": "503\nUnavailable", "stack": "Traceback ..."}
    row = fmt.event_row(_event(3, "failed", "render-1", attempt=2, **failure))
    assert row["summary"] == "API_ERROR: 503 Unavailable · attempt 2"
    assert row["worker"] == "render-1" and "Traceback" not in row["raw"]
    assert "Traceback" in fmt.event_row(_event(3, "failed", **failure), show_stack=True)["raw"]
    invalid = {"type": "INVALID_INPUT", "message": "payload: bad", "stack": "Traceback"}
    assert "Traceback" not in fmt.event_row(_event(4, "failed", **invalid), show_stack=True)["raw"]
    assert fmt.event_row(_event(5, "retried", by="alice", via="page"))["summary"] == (
        "by alice via page"
    )
    assert fmt.event_row(_event(6, "progress", "w", percent=40, stage="tts"))["summary"] == (
        "40% tts"
    )
    assert fmt.event_row(_event(7, "claimed", "w"), attempt=2)["summary"] == "attempt 2"
    expired = fmt.event_row(_event(8, "lease_expired", worker_id="w9", status="queued"))
    assert expired["worker"] == "w9"


def test_attempts_name_the_worker_of_each_claim() -> None:
    events = [
        _event(1, "created"),
        _event(2, "claimed", "w1"),
        _event(3, "retry_scheduled", "w1", type="TIMEOUT", message="slow"),
        _event(4, "claimed", "w2"),
        _event(5, "progress", "w2", percent=10),
    ]
    tries = fmt.attempts(events)
    assert [(t.number, t.worker, t.outcome) for t in tries] == [
        (1, "w1", "failed, retry scheduled: TIMEOUT: slow"),
        (2, "w2", "running"),
    ]
    assert tries[1].line().startswith("attempt 2 · w2 · claimed 2025-01-02 03:04:09")


def test_validation_errors_split_into_fields() -> None:
    assert fmt.is_validation_error({"type": ErrorCategory.INVALID_INPUT.value})
    assert not fmt.is_validation_error({"type": "API_ERROR"}) and not fmt.is_validation_error(None)
    assert fmt.validation_problems("payload.question: Field required; priority: bad one") == [
        ("payload.question", "Field required"),
        ("priority", "bad one"),
    ]
    assert fmt.validation_problems("something odd happened") == [
        ("payload", "something odd happened")
    ]


def test_build_filter_takes_the_new_filters_and_names_bad_ones() -> None:
    f = fmt.build_filter(
        "failed",
        "",
        "",
        "",
        category="TIMEOUT",
        service=" manim ",
        group_key="s1",
        created_after="2025-01-31",
        created_before="2025-02-01 12:00+01:00",
    )
    assert f.status is JobStatus.FAILED and f.category is ErrorCategory.TIMEOUT
    assert (f.service, f.group_key) == ("manim", "s1")
    assert f.created_after == datetime(2025, 1, 31, tzinfo=UTC)
    assert f.created_before is not None and f.created_before.utcoffset() == timedelta(hours=1)
    with pytest.raises(ValueError, match=r"^category:"):
        fmt.build_filter("", "", "", "", category="OOPS")
    with pytest.raises(ValueError, match=r"^created from:"):
        fmt.build_filter("", "", "", "", created_after="yesterday")
    assert fmt.describe_filter(JobFilter()) == "no filter: every job"
    assert fmt.describe_filter(f).startswith("status failed, category TIMEOUT, service manim")


def test_types_form_sends_only_changes_and_empty_clears() -> None:
    before = {"service": "manim", "timeout_s": "600", "max_retries": "3", "max_running": "4"}
    typed = {**before, "service": "", "timeout_s": "90.5", "max_running": "4"}
    assert parse_form(typed, before) == {"service": None, "timeout_s": 90.5}
    with pytest.raises(InvalidInput, match=r"^max_retries: not a whole number"):
        parse_form({**before, "max_retries": "2.5"}, before)
    assert parse_form(before, before) == {}


def test_bulk_question_and_scheduled_caption() -> None:
    assert question("retry", 1000) == "Retry 1,000 jobs?"
    assert question("cancel", 1) == "Cancel 1 job?"
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert next_run(None, now) == "none waiting for a later time"
    assert next_run((now + timedelta(seconds=95)).isoformat(), now) == "next in 1m 35s"
    assert next_run((now - timedelta(seconds=5)).isoformat(), now) == "next ready now"
