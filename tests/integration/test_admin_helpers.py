"""The admin page's parts that read the real database: job rows, the refresh interval,
the stats cards and the stats reader shared by open pages."""

from __future__ import annotations

import asyncio

import pytest

from vq_core.config import Settings
from vq_core.models import JobFilter, JobStatus, NewJob, Priority
from vq_core.store import Store
from vq_ui.admin import format as fmt
from vq_ui.admin.overview import SharedStats, card_values
from vq_ui.admin.page import refresh_interval


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


def test_refresh_interval_is_at_most_five_seconds(settings: Settings) -> None:
    assert refresh_interval(settings) == 5.0
    fast = settings.model_copy(update={"plugin_config": {"ui": {"refresh_seconds": "1"}}})
    assert refresh_interval(fast) == 1.0
    slow = settings.model_copy(update={"plugin_config": {"ui": {"refresh_seconds": 60}}})
    assert refresh_interval(slow) == 5.0
    bad = settings.model_copy(update={"plugin_config": {"ui": {"refresh_seconds": "soon"}}})
    with pytest.raises(ValueError, match="refresh_seconds"):
        refresh_interval(bad)


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
