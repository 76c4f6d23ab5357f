"""The top of the admin page: live counters and the depth/throughput chart of the last hour."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from nicegui import ui

from vq_core.models import JobStatus
from vq_core.store import Store
from vq_ui.admin.format import duration, percent

HOUR = timedelta(hours=1)
# Depth has no history table, so the page samples it. One history per store, shared by
# every open page, so a second tab starts with the first one's curve.
_MIN_SAMPLE_GAP_S = 2.0


class DepthHistory:
    """Queue depth samples of the last hour, oldest first."""

    def __init__(self) -> None:
        self.samples: deque[tuple[datetime, int]] = deque()

    def add(self, depth: int, now: datetime | None = None) -> None:
        """Record a sample unless one was taken moments ago; forget samples over an hour old."""
        now = now or datetime.now(UTC)
        if self.samples and (now - self.samples[-1][0]).total_seconds() < _MIN_SAMPLE_GAP_S:
            self.samples[-1] = (self.samples[-1][0], depth)
        else:
            self.samples.append((now, depth))
        while self.samples and now - self.samples[0][0] > HOUR:
            self.samples.popleft()


_histories: weakref.WeakKeyDictionary[Store, DepthHistory] = weakref.WeakKeyDictionary()


def depth_history(store: Store) -> DepthHistory:
    """The shared depth history of ``store``."""
    return _histories.setdefault(store, DepthHistory())


class SharedStats:
    """``Store.stats()`` and ``throughput_series()`` read once per ``max_age`` seconds
    for every open page: stats count the whole table (about 0.3 s at a million jobs),
    so ten operators must not mean ten scans every refresh."""

    def __init__(self, store: Store, max_age: float) -> None:
        self.store = store
        self.max_age = max_age
        self._lock = asyncio.Lock()
        self._value: tuple[dict[str, Any], list[dict[str, Any]]] | None = None
        self._read_at = 0.0

    async def read(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Fresh enough stats and series; concurrent callers share one read."""
        async with self._lock:
            if self._value is None or time.monotonic() - self._read_at >= self.max_age:
                stats, series = await asyncio.gather(
                    self.store.stats(), self.store.throughput_series()
                )
                self._value, self._read_at = (stats, series), time.monotonic()
            return self._value


_shared: weakref.WeakKeyDictionary[Store, SharedStats] = weakref.WeakKeyDictionary()


def shared_stats(store: Store, max_age: float) -> SharedStats:
    """The stats reader shared by every page over ``store``."""
    reader = _shared.get(store)
    if reader is None or reader.max_age != max_age:
        reader = _shared[store] = SharedStats(store, max_age)
    return reader


def minute_buckets(
    series: list[dict[str, Any]], now: datetime | None = None
) -> list[tuple[str, int, int]]:
    """Per-minute (iso minute, completed, failed) for each of the last 60 minutes, zeros
    filled in, so the chart's bars line up with the time axis."""
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    by_minute = {
        datetime.fromisoformat(r["minute"]).astimezone(UTC): (r["completed"], r["failed"])
        for r in series
    }
    out = []
    for i in range(59, -1, -1):
        minute = now - timedelta(minutes=i)
        completed, failed = by_minute.get(minute, (0, 0))
        out.append((minute.isoformat(), completed, failed))
    return out


def chart_options() -> dict[str, Any]:
    """The echart skeleton; ``Overview.refresh`` fills in the data."""
    return {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "legend": {"data": ["depth", "completed/min", "failed/min"], "top": 0},
        "grid": {"left": 48, "right": 56, "top": 48, "bottom": 28},
        "xAxis": {"type": "time"},
        "yAxis": [
            {"type": "value", "name": "depth", "minInterval": 1},
            {"type": "value", "name": "jobs/min", "minInterval": 1},
        ],
        "series": [
            {"name": "depth", "type": "line", "showSymbol": False, "data": [], "yAxisIndex": 0},
            {
                "name": "completed/min",
                "type": "bar",
                "stack": "done",
                "data": [],
                "yAxisIndex": 1,
                "itemStyle": {"color": "#21ba45"},
            },
            {
                "name": "failed/min",
                "type": "bar",
                "stack": "done",
                "data": [],
                "yAxisIndex": 1,
                "itemStyle": {"color": "#c10015"},
            },
        ],
    }


# (key, title) of the counter cards, in page order.
CARDS = (
    ("depth", "Queue depth"),
    *((s.value, s.value.capitalize()) for s in JobStatus),
    ("oldest", "Oldest ready"),
    ("scheduled", "Scheduled"),
    ("throughput", "Completed / min (5m)"),
    ("success", "Success rate (60m)"),
    ("avg", "Avg processing (60m)"),
    ("p95", "p95 processing (60m)"),
)


def next_run(next_run_at: str | None, now: datetime | None = None) -> str:
    """The caption of the scheduled card: when the next scheduled job becomes ready."""
    if not next_run_at:
        return "none waiting for a later time"
    wait = (datetime.fromisoformat(next_run_at) - (now or datetime.now(UTC))).total_seconds()
    return f"next in {duration(max(0.0, wait))}" if wait > 0 else "next ready now"


def card_values(stats: dict[str, Any], now: datetime | None = None) -> dict[str, tuple[str, str]]:
    """(value, caption) of every counter card from ``Store.stats()``.

    *Oldest ready* counts jobs ready to run only (``Store.stats()`` leaves jobs
    scheduled for later out of it): a retry waiting out its back-off is not a queue
    that backs up. Those jobs have their own card.
    """
    by_status = stats["by_status"]
    t5, t60 = stats["throughput"]["5m"], stats["throughput"]["60m"]
    durations = stats["duration_s"]
    values = {s.value: (f"{by_status.get(s.value, 0):,}", "") for s in JobStatus}
    scheduled = int(stats.get("scheduled") or 0)
    values["depth"] = (f"{stats['depth']:,}", f"ready now; {scheduled:,} scheduled for later")
    values["oldest"] = (duration(stats["oldest_queued_age_s"]), "the oldest ready job's wait")
    values["scheduled"] = (f"{scheduled:,}", next_run(stats.get("next_run_at"), now))
    values["throughput"] = (f"{t5['per_minute']:g}", f"{t60['completed']:,} in the last hour")
    values["success"] = (percent(t60["success_rate"]), f"{t60['failed']:,} failed in 60m")
    values["avg"] = (duration(durations["avg"]), "claim to completion")
    values["p95"] = (duration(durations["p95"]), f"p50 {duration(durations['p50'])}")
    return values


class Overview:
    """Counter cards and the chart; ``refresh`` updates them in place."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.history = depth_history(store)
        self.values: dict[str, ui.label] = {}
        self.captions: dict[str, ui.label] = {}

    def build_cards(self) -> None:
        """The counter cards, in the current container."""
        with ui.grid().classes("w-full gap-3 grid-cols-2 md:grid-cols-4 xl:grid-cols-6"):
            for key, title in CARDS:
                with ui.card().classes("gap-0 p-3").props(f"data-card={key}"):
                    ui.label(title).classes("text-xs uppercase text-grey-7")
                    self.values[key] = (
                        ui.label("…").classes("text-2xl font-bold").props(f"data-stat={key}")
                    )
                    self.captions[key] = ui.label("").classes("text-xs text-grey-6")

    def build_chart(self) -> None:
        """The depth/throughput chart card, in the current container."""
        with ui.card().classes("w-full").props("data-panel=chart"):
            ui.label("Depth and throughput, last hour").classes("text-sm font-medium")
            self.chart = ui.echart(chart_options()).classes("w-full h-72")

    def show(self, stats: dict[str, Any], series: list[dict[str, Any]]) -> None:
        """Put fresh numbers on the cards and the chart."""
        for key, (value, caption) in card_values(stats).items():
            self.values[key].set_text(value)
            self.captions[key].set_text(caption)
        self.history.add(int(stats["depth"]))
        buckets = minute_buckets(series)
        options = self.chart.options
        options["series"][0]["data"] = [[t.isoformat(), d] for t, d in self.history.samples]
        options["series"][1]["data"] = [[m, c] for m, c, _ in buckets]
        options["series"][2]["data"] = [[m, f] for m, _, f in buckets]
        self.chart.update()
