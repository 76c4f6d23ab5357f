"""The admin page's pure parts (no browser, no database): formatting, filters, rows,
chart data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vq_core.models import JobFilter, JobStatus, Priority
from vq_ui.admin import format as fmt
from vq_ui.admin.health import service_row, worker_row
from vq_ui.admin.jobs import actions_cell
from vq_ui.admin.overview import DepthHistory, minute_buckets
from vq_ui.admin.page import initial_state


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.25, "0.2s"),
        (9.96, "10.0s"),
        (42, "42s"),
        (95.2, "1m 35s"),
        (3 * 3600 + 61, "3h 1m"),
        (2 * 86_400 + 7200, "2d 2h"),
    ],
)
def test_duration(seconds: float | None, text: str) -> None:
    assert fmt.duration(seconds) == text


def test_percent_progress_and_timestamps() -> None:
    assert fmt.percent(None) == "-" and fmt.percent(0.9512) == "95.1%"
    assert fmt.progress_text({"percent": 40, "stage": "diagram"}) == "40% diagram"
    assert fmt.progress_text(None) == ""
    moment = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert fmt.timestamp(moment) == "2025-01-02 03:04:05"
    assert fmt.ago(moment, moment + timedelta(seconds=75)) == "1m 15s ago"


def test_build_filter_names_the_bad_field() -> None:
    f = fmt.build_filter("failed", "doubt", "high", "  gravity   waves ")
    assert f == JobFilter(JobStatus.FAILED, "doubt", Priority.HIGH, "gravity waves")
    assert fmt.build_filter("", "", "", "   ") == JobFilter()
    with pytest.raises(ValueError, match=r"^status:"):
        fmt.build_filter("exploded", "", "", "")
    with pytest.raises(ValueError, match=r"^priority:"):
        fmt.build_filter("", "", "soonish", "")
    assert len(fmt.build_filter("", "", "", "x" * 1000).text or "") == fmt.MAX_SEARCH


def test_safe_url_keeps_only_web_links() -> None:
    assert fmt.safe_url("https://127.0.0.1:9000/v.mp4") == "https://127.0.0.1:9000/v.mp4"
    assert fmt.safe_url("/media/v.mp4") == "/media/v.mp4"
    for bad in ("javascript:alert(1)", "data:text/html,x", "//evil/v.mp4", None, 42):
        assert fmt.safe_url(bad) is None


def test_viewers_get_the_details_button_only() -> None:
    assert "cancel" not in actions_cell(False) and "retry" not in actions_cell(False)
    assert "details" in actions_cell(False)
    assert "'cancel'" in actions_cell(True) and "'retry'" in actions_cell(True)


def test_query_string_sets_only_known_filters() -> None:
    state = initial_state({"status": "failed", "priority": "urgent", "type": "doubt", "q": "x"})
    assert (state.status, state.priority, state.job_type, state.text) == (
        "failed",
        "urgent",
        "doubt",
        "x",
    )
    odd = initial_state({"status": "DROP TABLE", "priority": "9", "sort": "id"})
    assert (odd.status, odd.priority, odd.sort) == ("", "", "-created_at")
    steering = initial_state({"category": "NETWORK", "service": "manim", "group": "s-42"})
    assert (steering.category, steering.service, steering.group_key) == (
        "NETWORK",
        "manim",
        "s-42",
    )
    assert initial_state({"category": "BOGUS"}).category == ""


def test_minute_buckets_fill_the_hour_with_zeros() -> None:
    now = datetime(2025, 1, 1, 12, 30, 40, tzinfo=UTC)
    series = [{"minute": "2025-01-01T12:28:00+00:00", "completed": 4, "failed": 1}]
    buckets = minute_buckets(series, now)
    assert len(buckets) == 60
    assert buckets[-1] == ("2025-01-01T12:30:00+00:00", 0, 0)
    assert buckets[-3] == ("2025-01-01T12:28:00+00:00", 4, 1)
    assert sum(c for _, c, _ in buckets) == 4


def test_depth_history_keeps_an_hour_and_merges_close_samples() -> None:
    history, start = DepthHistory(), datetime(2025, 1, 1, tzinfo=UTC)
    history.add(3, start)
    history.add(5, start + timedelta(seconds=1))  # too close: replaces the last sample
    assert [d for _, d in history.samples] == [5]
    for minute in range(1, 70):
        history.add(minute, start + timedelta(minutes=minute))
    assert (history.samples[-1][0] - history.samples[0][0]) <= timedelta(hours=1)
    assert history.samples[-1][1] == 69


def test_worker_and_service_rows() -> None:
    from vq_core.models import WorkerInfo

    now = datetime.now(UTC)
    worker = WorkerInfo(
        id="w1",
        hostname="h",
        pid=1,
        concurrency=4,
        job_types=["doubt"],
        status="running",
        started_at=now,
        last_heartbeat=now - timedelta(seconds=3),
        lease_seconds=30,
        jobs_in_flight=2,
        jobs_completed=10,
        jobs_failed=3,
        consecutive_failures=3,
        stale=False,
    )
    row = worker_row(worker, now)
    assert (row["state"], row["in_flight"], row["heartbeat"]) == ("failing", "2/4", "3.0s ago")
    assert worker_row(WorkerInfo(**{**worker.__dict__, "stale": True}), now)["state"] == "stale"
    down = service_row(
        {
            "service": "manim",
            "healthy": False,
            "checked_at": now,
            "detail": "refused",
            "job_types": ["diagram"],
        },
        now,
    )
    assert (down["state"], down["job_types"]) == ("down", "diagram")


def test_render_origin_labels_stand_in_renders_only() -> None:
    local = fmt.render_origin({"video_url": "/media/a.mp4", "service": "local"})
    assert local is not None and "local renderer" in local and "not a production" in local
    reference = fmt.render_origin(
        {"service": "manim_revideo", "reference": True, "renderer": "manim",
         "fallback": "Manim is not installed"}
    )
    assert reference is not None
    assert "reference services (manim)" in reference and "Manim is not installed" in reference
    # A production service's video carries no warning, nor does a truthy non-boolean flag.
    assert fmt.render_origin({"service": "orchestrator", "video_url": "/x.mp4"}) is None
    assert fmt.render_origin({"service": "orchestrator", "reference": "yes"}) is None
    assert fmt.render_origin(None) is None
