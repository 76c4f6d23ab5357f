"""The admin page's pure parts (no browser): formatting, filters, rows, chart data, and
the stats reader shared by open pages (against the real database)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from vq_core.config import Settings
from vq_core.models import JobFilter, JobStatus, NewJob, Priority
from vq_core.store import Store
from vq_ui.admin import format as fmt
from vq_ui.admin.health import service_row, worker_row
from vq_ui.admin.jobs import actions_cell
from vq_ui.admin.overview import DepthHistory, SharedStats, card_values, minute_buckets
from vq_ui.admin.page import initial_state, refresh_interval


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
    assert fmt.safe_url("https://cdn.example/v.mp4") == "https://cdn.example/v.mp4"
    assert fmt.safe_url("/media/v.mp4") == "/media/v.mp4"
    for bad in ("javascript:alert(1)", "data:text/html,x", "//evil/v.mp4", None, 42):
        assert fmt.safe_url(bad) is None


async def test_job_rows_flags_and_matching(store: Store) -> None:
    queued = (await store.enqueue(NewJob("doubt", {"question": "Why  is\nthe sky blue?"}))).id
    job = await store.get_job(queued)
    row = fmt.job_row(job)
    assert row["summary"] == "Why is the sky blue?" and row["short_id"] == str(queued)[-8:]
    assert row["can_cancel"] and not row["can_retry"] and row["status_color"] == "blue-grey"
    assert fmt.matches(job, JobFilter(status=JobStatus.QUEUED, job_type="doubt"))
    assert not fmt.matches(job, JobFilter(priority=Priority.HIGH))
    cancelled = await store.cancel(queued)
    assert fmt.can_retry(cancelled) and not fmt.can_cancel(cancelled)
    events = await store.get_events(queued)
    assert [fmt.event_row(e)["event"] for e in events] == ["created", "cancelled"]


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


def test_refresh_interval_is_at_most_five_seconds(settings: Settings) -> None:
    assert refresh_interval(settings) == 5.0
    fast = settings.model_copy(update={"plugin_config": {"ui": {"refresh_seconds": "1"}}})
    assert refresh_interval(fast) == 1.0
    slow = settings.model_copy(update={"plugin_config": {"ui": {"refresh_seconds": 60}}})
    assert refresh_interval(slow) == 5.0
    bad = settings.model_copy(update={"plugin_config": {"ui": {"refresh_seconds": "soon"}}})
    with pytest.raises(ValueError, match="refresh_seconds"):
        refresh_interval(bad)


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


async def test_cards_read_the_real_stats(store: Store) -> None:
    await store.enqueue_many([NewJob("doubt") for _ in range(3)])
    values = card_values(await store.stats())
    assert values["queued"][0] == "3" and values["depth"][0] == "3"
    assert values["success"][0] == "-"  # nothing finished yet


async def test_open_pages_share_one_stats_read(store: Store) -> None:
    reader = SharedStats(store, max_age=60)
    first, second = await asyncio.gather(reader.read(), reader.read())
    assert first is second
    await store.enqueue(NewJob("doubt"))
    assert (await reader.read())[0]["total"] == 0  # still the cached read
    assert (await SharedStats(store, max_age=0).read())[0]["total"] == 1


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
