"""The job types card of the admin page: each type's state, settings and counts, and for
operators and admins the controls that steer it (pause, resume, edit its settings).

Every row comes from ``Store.type_states`` (what ``vq types list`` prints), so a type
routed to a missing or unhealthy service says so here: its jobs would otherwise wait
silently. Changes go through ``vq_core.validation.queue_config_patch`` and
``Store.update_queue_config``, which records who made them (``via`` ``page``) in
``vq.config_changes``, as the API and the CLI do.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from nicegui import ui

from vq_core.config import Settings
from vq_core.errors import InvalidInput
from vq_core.models import Actor
from vq_core.queue_types import TypeState
from vq_core.store import Store
from vq_core.validation import queue_config_patch
from vq_ui.admin.format import ago, duration

log = logging.getLogger(__name__)

STATE_COLORS = {
    "active": "positive",
    "paused": "warning",
    "unrouted": "negative",
    "service missing": "negative",
    "service unhealthy": "negative",
}
TYPE_COLUMNS = [
    {"name": "job_type", "label": "Type", "field": "job_type", "align": "left"},
    {
        "name": "state",
        "label": "State",
        "field": "state",
        "align": "left",
        "style": "white-space: normal; min-width: 12rem; max-width: 22rem",
    },
    {"name": "service", "label": "Service", "field": "service", "align": "left"},
    {"name": "timeout", "label": "Timeout", "field": "timeout"},
    {"name": "retries", "label": "Retries", "field": "retries"},
    {"name": "concurrency", "label": "Per worker", "field": "concurrency"},
    {"name": "max_running", "label": "Max running", "field": "max_running"},
    {"name": "per_group", "label": "Per group", "field": "per_group"},
    {"name": "ready", "label": "Ready", "field": "ready"},
    {"name": "scheduled", "label": "Scheduled", "field": "scheduled"},
    {"name": "running", "label": "Running", "field": "running"},
    {"name": "failed", "label": "Failed", "field": "failed"},
    {
        "name": "changed",
        "label": "Last change",
        "field": "changed",
        "align": "left",
        "style": "white-space: normal",
    },
]
_STATE_CELL = """
<q-td :props="props" :data-type-state="props.row.job_type">
  <q-badge :color="props.row.state_color" :label="props.value" :data-state="props.value" />
  <div v-if="props.row.problem" class="text-xs text-negative font-medium mt-1"
    :data-type-problem="props.row.job_type">⚠ {{ props.row.problem }}</div>
</q-td>
"""
_BUTTON = """<q-btn flat dense size="sm" icon="{icon}" label="{label}" color="{color}"
  :data-job-type="props.row.job_type" data-action="{event}"
  @click="() => $parent.$emit('{event}', props.row.job_type)" />"""
_ACTIONS_CELL = (
    '<q-td :props="props" class="whitespace-nowrap">'
    "<template v-if='props.row.paused'>"
    + _BUTTON.format(icon="play_arrow", label="Resume", color="positive", event="type-resume")
    + "</template><template v-else>"
    + _BUTTON.format(icon="pause", label="Pause", color="warning", event="type-pause")
    + "</template>"
    + _BUTTON.format(icon="edit", label="Edit", color="primary", event="type-edit")
    + "</q-td>"
)

#: The settings the edit dialog shows: (setting, label, kind, hint). An empty field
#: clears the service or a cap; the timeout and the retry limit cannot be cleared.
FIELDS: tuple[tuple[str, str, type, str], ...] = (
    ("service", "Service", str, "empty: routed by the services' own types"),
    ("timeout_s", "Timeout (s)", float, "seconds per attempt"),
    ("max_retries", "Max retries", int, "retries after the first attempt"),
    ("concurrency", "Concurrency per worker", int, "empty: the worker's own"),
    ("max_running", "Max running (cluster)", int, "empty: no cap"),
    ("max_running_per_group", "Max running per group", int, "empty: no cap"),
)


def _cap(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def type_row(state: TypeState, now: datetime) -> dict[str, Any]:
    """A row of the types table."""
    config, counts = state.config, state.counts
    if config.updated_at is not None:
        changed = f"{config.updated_by or '?'} · {ago(config.updated_at, now)}"
    else:
        changed = "never (defaults)" if not state.configured else "-"
    return {
        "job_type": state.job_type,
        "state": state.state,
        "state_color": STATE_COLORS.get(state.state, "grey"),
        # A paused type still says why its service would not run it either.
        "problem": state.problem or "",
        "paused": config.paused,
        "service": state.service or "-",
        "timeout": duration(config.timeout_s),
        "retries": config.max_retries,
        "concurrency": _cap(config.concurrency),
        "max_running": _cap(config.max_running),
        "per_group": _cap(config.max_running_per_group),
        "ready": counts.get("ready", 0),
        "scheduled": counts.get("scheduled", 0),
        "running": counts.get("running", 0),
        "failed": counts.get("failed", 0),
        "changed": changed,
    }


def form_values(state: TypeState) -> dict[str, str]:
    """The edit dialog's fields for a type, as text (empty for a setting not set)."""
    config = state.config
    out = {}
    for name, _, kind, _ in FIELDS:
        value = getattr(config, name)
        if value is None:
            out[name] = ""
        elif kind is float:
            out[name] = f"{float(value):g}"
        else:
            out[name] = str(value)
    return out


def parse_form(typed: dict[str, str], before: dict[str, str]) -> dict[str, Any]:
    """The settings the user changed, as ``queue_config_patch`` takes them: a field
    emptied means ``None`` (clear it). ``InvalidInput`` names a field that is not a
    number; the patch then checks the ranges."""
    values: dict[str, Any] = {}
    for name, _, kind, _ in FIELDS:
        text = (typed.get(name) or "").strip()
        if text == before.get(name, ""):
            continue
        if not text:
            values[name] = None
        elif kind is int:
            try:
                values[name] = int(text)
            except ValueError:
                raise InvalidInput(f"{name}: not a whole number: {text!r}") from None
        elif kind is float:
            try:
                values[name] = float(text)
            except ValueError:
                raise InvalidInput(f"{name}: not a number: {text!r}") from None
        else:
            values[name] = text
    return values


class TypesPanel:
    """The types card; ``refresh()`` re-reads the types with the page's timer.

    :param may_act: operators and admins; viewers get the table without controls.
    :param authorize: asked again before every change, as ``Actions`` does.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        username: str,
        may_act: bool,
        authorize: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.username = username
        self.may_act = may_act
        self.authorize = authorize
        self.states: dict[str, TypeState] = {}
        self.editing: str | None = None
        self.before: dict[str, str] = {}
        columns = TYPE_COLUMNS + (
            [{"name": "actions", "label": "", "field": "job_type", "align": "right"}]
            if may_act
            else []
        )
        with ui.card().classes("w-full").props("data-panel=types"):
            ui.label("Job types").classes("text-sm font-medium")
            self.table = ui.table(columns=columns, rows=[], row_key="job_type").classes("w-full")
            self.table.props("flat dense hide-bottom no-data-label='No job type yet'")
            self.table.add_slot("body-cell-state", _STATE_CELL)
            if may_act:
                self.table.add_slot("body-cell-actions", _ACTIONS_CELL)
                self.table.on("type-pause", lambda e: self.set_paused(e.args, True))
                self.table.on("type-resume", lambda e: self.set_paused(e.args, False))
                self.table.on("type-edit", lambda e: self.edit(e.args))
        self._dialog()

    def _dialog(self) -> None:
        self.inputs: dict[str, ui.input] = {}
        with (
            ui.dialog() as self.dialog,
            ui.card().classes("min-w-96").props("data-dialog=type-edit"),
        ):
            self.dialog_title = ui.label("").classes("text-lg font-medium")
            for name, label, _, hint in FIELDS:
                self.inputs[name] = (
                    ui.input(label, placeholder=hint)
                    .classes("w-full")
                    .props(f"clearable data-edit={name}")
                )
            ui.label("An empty field clears the service or the cap.").classes("text-xs text-grey-7")
            with ui.row().classes("w-full justify-end"):
                ui.button("Close", on_click=self.dialog.close).props(
                    "flat data-action=type-edit-close"
                )
                ui.button("Save", on_click=self.save).props("data-action=type-edit-save")

    async def refresh(self) -> None:
        """Re-read every type's state and show it."""
        states = await self.store.type_states(self.settings.default_timeout)
        self.states = {s.job_type: s for s in states}
        now = datetime.now(UTC)
        rows = [type_row(s, now) for s in states]
        if rows != self.table.rows:
            self.table.rows = rows
            self.table.update()

    async def _allowed(self) -> bool:
        if not self.may_act:  # a forged event from a viewer's browser
            ui.notify("Your role may not change job types", type="negative")
            return False
        return self.authorize is None or await self.authorize()

    def _known(self, raw: object) -> str | None:
        job_type = str(raw)
        if job_type not in self.states:
            ui.notify(f"Unknown job type {job_type[:64]!r}", type="warning")
            return None
        return job_type

    async def set_paused(self, raw: object, paused: bool) -> None:
        """Pause or resume a type (running jobs finish; queued ones wait)."""
        job_type = self._known(raw)
        if job_type is None or not await self._allowed():
            return
        verb = "paused" if paused else "resumed"
        if await self._update(job_type, {"paused": paused}):
            ui.notify(f"{job_type} {verb}", type="positive")

    async def edit(self, raw: object) -> None:
        """Open the edit dialog on a type, filled with its settings."""
        job_type = self._known(raw)
        if job_type is None or not await self._allowed():
            return
        self.editing = job_type
        self.before = form_values(self.states[job_type])
        self.dialog_title.set_text(f"Settings of {job_type}")
        for name, field_input in self.inputs.items():
            field_input.set_value(self.before[name])
        self.dialog.open()

    async def save(self) -> None:
        """Check the dialog's values and store the changed ones; a bad value is named
        in a notification and nothing is stored."""
        job_type = self.editing
        if job_type is None or not await self._allowed():
            return
        typed = {name: str(field.value or "") for name, field in self.inputs.items()}
        try:
            values = parse_form(typed, self.before)
        except InvalidInput as exc:
            ui.notify(f"Not saved: {exc}", type="negative", multi_line=True)
            return
        if not values:
            ui.notify("Nothing changed", type="info")
            self.dialog.close()
            return
        if await self._update(job_type, values):
            ui.notify(f"{job_type}: {', '.join(sorted(values))} saved", type="positive")
            self.dialog.close()

    async def _update(self, job_type: str, values: dict[str, Any]) -> bool:
        try:
            patch = queue_config_patch(values)
            await self.store.update_queue_config(
                job_type,
                patch,
                Actor(self.username, "page"),
                self.settings.default_timeout,
            )
        except InvalidInput as exc:
            ui.notify(f"Not saved: {exc}", type="negative", multi_line=True)
            return False
        except Exception as exc:  # the page must survive a database hiccup
            log.exception("changing job type %s failed", job_type)
            ui.notify(f"Could not change {job_type}: {exc}", type="negative", multi_line=True)
            return False
        await self.refresh()
        return True
