"""The admin page's alerts card: rows built from the stored alert state."""

from __future__ import annotations

from datetime import UTC, datetime

from vq_core.alerts.engine import AlertEngine
from vq_core.config import Settings
from vq_core.models import NewJob
from vq_core.store import Store
from vq_ui.admin.alerts import alert_row, headline


async def test_rows_show_firing_then_resolved(store: Store, settings: Settings) -> None:
    cfg = settings.model_copy(
        update={"alerts": settings.alerts.model_copy(update={"queue_depth": 0})}
    )
    engine = AlertEngine(store, cfg, [])
    gone = await store.enqueue(NewJob("manim"))
    await store.enqueue(NewJob("doubt"))
    await engine.tick()
    await store.cancel(gone.id)
    await engine.tick()
    alerts = await store.list_alerts()
    now = datetime.now(UTC)
    rows = [alert_row(a, now) for a in alerts]
    assert [(r["key"], r["state"], r["state_color"]) for r in rows] == [
        ("queue_depth:doubt", "firing", "negative"),
        ("queue_depth:manim", "resolved", "positive"),
    ]
    assert rows[0]["since"].endswith("ago") and rows[1]["since"].startswith("resolved ")
    assert rows[1]["sent"] == 2  # the firing and the resolution
    assert headline(alerts) == "Alerts: 1 firing"
    assert headline([a for a in alerts if not a.firing]) == "Alerts: none firing"
