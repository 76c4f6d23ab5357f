"""The alerts card of the admin page: alerts firing now and the latest resolutions.

Fills the ``alerts_panel`` slot of ``vq_ui.admin.health``; reads ``vq.alerts``
through ``Store.list_alerts`` on every page refresh.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nicegui import ui

from vq_core.config import Settings
from vq_core.store import Store
from vq_core.store.alerts import AlertRecord
from vq_ui.admin.format import ago

# Firing alerts all show; resolutions fill the rest, newest first.
MAX_ROWS = 20

# The card has half the page's width: long keys (a worker's id) and summaries wrap,
# breaking inside a word if they must, so the card never needs a horizontal scrollbar.
_WRAP = "white-space: normal; overflow-wrap: anywhere"
ALERT_COLUMNS = [
    {"name": "state", "label": "State", "field": "state", "align": "left"},
    {
        "name": "key",
        "label": "Alert",
        "field": "key",
        "align": "left",
        "style": f"{_WRAP}; max-width: 14rem",
    },
    {"name": "summary", "label": "Summary", "field": "summary", "align": "left", "style": _WRAP},
    {"name": "since", "label": "Since", "field": "since", "align": "left", "style": _WRAP},
    {"name": "sent", "label": "Sent", "field": "sent"},
]
_STATE_CELL = """
<q-td :props="props">
  <q-badge :color="props.row.state_color" :label="props.value" :data-state="props.value" />
</q-td>
"""


def alert_row(alert: AlertRecord, now: datetime) -> dict[str, Any]:
    """A row of the alerts table."""
    if alert.firing:
        state, color, since = "firing", "negative", ago(alert.first_seen, now)
    else:
        state, color, since = "resolved", "positive", f"resolved {ago(alert.resolved_at, now)}"
    return {
        "key": alert.key,
        "state": state,
        "state_color": color,
        "summary": alert.summary,
        "since": since,
        "sent": alert.send_count,
    }


def headline(alerts: list[AlertRecord]) -> str:
    """The card's title: how many alerts fire."""
    firing = sum(1 for a in alerts if a.firing)
    if firing == 0:
        return "Alerts: none firing"
    return f"Alerts: {firing} firing"


class AlertsPanel:
    """The alerts card; ``refresh()`` re-reads the alerts and updates the rows."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        with ui.card().classes("w-full").props("data-panel=alerts-list"):
            self.title = ui.label("Alerts").classes("text-sm font-medium")
            self.table = (
                ui.table(columns=ALERT_COLUMNS, rows=[], row_key="key")
                .classes("w-full")
                .props("flat dense hide-bottom no-data-label='No alert has fired'")
            )
            self.table.add_slot("body-cell-state", _STATE_CELL)

    async def refresh(self) -> None:
        """Re-read ``vq.alerts`` and show it."""
        alerts = await self.store.list_alerts(limit=MAX_ROWS)
        now = datetime.now(UTC)
        self.title.set_text(headline(alerts))
        self.table.rows = [alert_row(a, now) for a in alerts]
        self.table.update()
