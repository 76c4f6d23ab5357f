"""Workers, video services and the alerts slot of the admin page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from nicegui import ui

from vq_core.config import Settings
from vq_core.models import WorkerInfo
from vq_core.store import Store
from vq_ui.admin.format import ago

# A worker this many failures in a row is flagged (the alert rule's default threshold).
FAILING_STREAK = 3

WORKER_COLUMNS = [
    {"name": "id", "label": "Worker", "field": "id", "align": "left"},
    {"name": "state", "label": "State", "field": "state", "align": "left"},
    {"name": "in_flight", "label": "In flight", "field": "in_flight"},
    {"name": "completed", "label": "Completed", "field": "completed"},
    {"name": "failed", "label": "Failed", "field": "failed"},
    {"name": "streak", "label": "Failures in a row", "field": "streak"},
    {"name": "heartbeat", "label": "Heartbeat", "field": "heartbeat", "align": "left"},
]
SERVICE_COLUMNS = [
    {"name": "service", "label": "Service", "field": "service", "align": "left"},
    {"name": "state", "label": "State", "field": "state", "align": "left"},
    {"name": "job_types", "label": "Job types", "field": "job_types", "align": "left"},
    {"name": "checked", "label": "Checked", "field": "checked", "align": "left"},
    {"name": "detail", "label": "Detail", "field": "detail", "align": "left"},
]
_STATE_CELL = """
<q-td :props="props">
  <q-badge :color="props.row.state_color" :label="props.value" :data-state="props.value" />
</q-td>
"""


class Panel(Protocol):
    """A self-refreshing part of the page (what ``alerts_panel`` returns)."""

    async def refresh(self) -> None:
        """Re-read the store and update the panel in place."""
        ...


def alerts_panel(store: Store, settings: Settings) -> Panel | None:
    """Slot for the alerts card (issue 5): build it here, inside the current NiceGUI
    container, and return an object whose ``refresh()`` the page's timer awaits.

    Returning ``None`` leaves the slot empty; the service health card stays either way.
    """
    from vq_ui.admin.alerts import AlertsPanel

    return AlertsPanel(store, settings)


def worker_row(worker: WorkerInfo, now: datetime) -> dict[str, Any]:
    """A row of the workers table."""
    if worker.stale:
        state, color = "stale", "negative"
    elif worker.consecutive_failures >= FAILING_STREAK:
        state, color = "failing", "warning"
    else:
        state, color = "alive", "positive"
    return {
        "id": worker.id,
        "state": state,
        "state_color": color,
        "in_flight": f"{worker.jobs_in_flight}/{worker.concurrency}",
        "completed": worker.jobs_completed,
        "failed": worker.jobs_failed,
        "streak": worker.consecutive_failures,
        "heartbeat": ago(worker.last_heartbeat, now),
    }


def service_row(health: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A row of the services table from ``Store.list_service_health()``."""
    healthy = bool(health["healthy"])
    return {
        "service": health["service"],
        "state": "healthy" if healthy else "down",
        "state_color": "positive" if healthy else "negative",
        "job_types": ", ".join(health.get("job_types") or []),
        "checked": ago(health.get("checked_at"), now),
        "detail": health.get("detail") or "",
    }


class Health:
    """The workers and services cards."""

    def __init__(self) -> None:
        with ui.card().classes("w-full").props("data-panel=workers"):
            ui.label("Workers").classes("text-sm font-medium")
            self.workers = (
                ui.table(columns=WORKER_COLUMNS, rows=[], row_key="id")
                .classes("w-full")
                .props("flat dense hide-bottom no-data-label='No worker is running'")
            )
            self.workers.add_slot("body-cell-state", _STATE_CELL)
        with ui.card().classes("w-full").props("data-panel=services"):
            ui.label("Video services").classes("text-sm font-medium")
            self.services = (
                ui.table(columns=SERVICE_COLUMNS, rows=[], row_key="service")
                .classes("w-full")
                .props("flat dense hide-bottom no-data-label='No health check recorded yet'")
            )
            self.services.add_slot("body-cell-state", _STATE_CELL)

    def show(self, workers: list[WorkerInfo], services: list[dict[str, Any]]) -> None:
        """Replace the rows with fresh ones."""
        now = datetime.now(UTC)
        for table, rows in (
            (self.workers, [worker_row(w, now) for w in workers]),
            (self.services, [service_row(s, now) for s in services]),
        ):
            if rows != table.rows:
                table.rows = rows
                table.update()
