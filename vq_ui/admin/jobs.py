"""The job list of the admin page: filters, search, sort and keyset paging, all on the server.

Only one page of rows is ever read (``Store.list_jobs`` with its cursor), so the list
costs the same with a hundred jobs or a million.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from nicegui import ui

from vq_core.errors import InvalidInput, JobNotFound
from vq_core.models import ErrorCategory, JobFilter, JobPage, JobStatus, Priority
from vq_core.store import Store
from vq_ui.admin.actions import Actions, parse_job_id
from vq_ui.admin.bulk import BulkActions
from vq_ui.admin.format import ANY, PAGE_SIZES, SORT_CHOICES, build_filter, job_row, matches

log = logging.getLogger(__name__)

# A read slower than SLOW_READ_S is said so, and timer refreshes wait SLOW_READ_FACTOR
# times its duration: a 3 s search of a million jobs then runs every 30 s, not every 5.
SLOW_READ_S = 1.0
SLOW_READ_FACTOR = 10.0

COLUMNS = [
    {"name": "id", "label": "Job", "field": "short_id", "align": "left"},
    {"name": "job_type", "label": "Type", "field": "job_type", "align": "left"},
    {"name": "priority", "label": "Priority", "field": "priority", "align": "left"},
    {"name": "status", "label": "Status", "field": "status", "align": "left"},
    {
        "name": "summary",
        "label": "Question / topic",
        "field": "summary",
        "align": "left",
        "style": "max-width: 28rem; white-space: normal",
    },
    {"name": "retries", "label": "Retries", "field": "retries"},
    {"name": "created_at", "label": "Created (UTC)", "field": "created_at", "align": "left"},
    {"name": "updated_at", "label": "Updated (UTC)", "field": "updated_at", "align": "left"},
    {"name": "actions", "label": "", "field": "id", "align": "right"},
]
_ID_CELL = """
<q-td :props="props">
  <span class="font-mono" :data-job-id="props.row.id" :title="props.row.id">{{ props.value }}</span>
</q-td>
"""
_STATUS_CELL = """
<q-td :props="props">
  <q-badge :color="props.row.status_color" :label="props.value" :data-status="props.value" />
  <span v-if="props.row.progress" class="ml-1 text-xs text-grey-7">{{ props.row.progress }}</span>
  <span v-if="props.row.error" class="ml-1 text-xs text-negative">{{ props.row.error }}</span>
  <span v-if="props.row.cancel_requested" class="ml-1 text-xs text-grey-7">stopping</span>
</q-td>
"""
_BUTTON = """<q-btn flat dense round size="sm" icon="{icon}" color="{color}"
  :data-job-id="props.row.id" data-action="{event}"
  @click="() => $parent.$emit('{event}', props.row.id)"><q-tooltip>{tip}</q-tooltip></q-btn>"""


def actions_cell(may_act: bool) -> str:
    """The actions column template; viewers get the details button only."""
    buttons = [_BUTTON.format(icon="visibility", color="primary", event="details", tip="Details")]
    if may_act:
        buttons.append(
            "<template v-if='props.row.can_cancel'>"
            + _BUTTON.format(icon="cancel", color="negative", event="cancel", tip="Cancel")
            + "</template>"
        )
        buttons.append(
            "<template v-if='props.row.can_retry'>"
            + _BUTTON.format(icon="replay", color="primary", event="retry", tip="Retry")
            + "</template>"
        )
    return '<q-td :props="props" class="whitespace-nowrap">' + "".join(buttons) + "</q-td>"


@dataclass
class ListState:
    """What the user chose; survives every refresh. ``cursors[i]`` opens page ``i``."""

    status: str = ANY
    job_type: str = ANY
    priority: str = ANY
    text: str = ""
    category: str = ANY
    service: str = ""
    group_key: str = ""
    created_after: str = ""
    created_before: str = ""
    sort: str = "-created_at"
    page_size: int = 50
    cursors: list[str | None] = field(default_factory=lambda: [None])
    next_cursor: str | None = None

    @property
    def page(self) -> int:
        """Zero-based page number."""
        return len(self.cursors) - 1


class JobList:
    """The filter bar, the table and the pager."""

    def __init__(
        self,
        store: Store,
        actions: Actions,
        open_details: Callable[[str], Awaitable[None]],
        initial: ListState | None = None,
    ) -> None:
        self.store = store
        self.state = initial or ListState()
        # Bumped by every change of filters or page, so a refresh that started before
        # the change cannot overwrite the newer rows when it finishes late.
        self.generation = 0
        self.next_tick_at = 0.0
        with ui.card().classes("w-full").props("data-panel=jobs"):
            self._filter_bar()
            self.table = ui.table(columns=COLUMNS, rows=[], row_key="id").classes("w-full")
            self.table.props("flat dense hide-bottom no-data-label='No job matches'")
            self.table.add_slot("body-cell-id", _ID_CELL)
            self.table.add_slot("body-cell-status", _STATUS_CELL)
            self.table.add_slot("body-cell-actions", actions_cell(actions.may_act))
            self.table.on("details", lambda e: open_details(str(e.args)))
            if actions.may_act:
                self.table.on("cancel", lambda e: actions.cancel(e.args))
                self.table.on("retry", lambda e: actions.retry(e.args))
            self._pager()
            with self.bulk_slot:
                self.bulk = BulkActions(store, actions, self.filters, actions.after_change)

    def _filter_bar(self) -> None:
        s = self.state
        with ui.row().classes("w-full items-end gap-3"):
            ui.label("Jobs").classes("text-lg font-medium mr-4")
            statuses = {ANY: "Any status", **{x.value: x.value for x in JobStatus}}
            self.status = ui.select(
                statuses,
                value=s.status,
                label="Status",
                on_change=lambda e: self._set(status=e.value),
            )
            self.status.classes("min-w-36").props("data-filter=status")
            self.job_type = ui.select(
                {ANY: "Any type"},
                value=ANY,
                label="Type",
                on_change=lambda e: self._set(job_type=e.value),
            )
            self.job_type.classes("min-w-36").props("data-filter=type")
            self.set_job_types([s.job_type] if s.job_type else [])
            self.job_type.set_value(s.job_type)
            priorities = {ANY: "Any priority", **{p.label: p.label for p in Priority}}
            ui.select(
                priorities,
                value=s.priority,
                label="Priority",
                on_change=lambda e: self._set(priority=e.value),
            ).classes("min-w-36").props("data-filter=priority")
            ui.input(
                "Search",
                value=s.text,
                placeholder="question, topic, type or job id",
                on_change=lambda e: self._set(text=e.value or ""),
            ).classes("min-w-64 grow").props("clearable debounce=400 data-filter=text")
            ui.select(
                SORT_CHOICES,
                value=s.sort,
                label="Sort",
                on_change=lambda e: self._set(sort=e.value),
            ).classes("min-w-40").props("data-filter=sort")
            ui.select(
                list(PAGE_SIZES),
                value=s.page_size,
                label="Per page",
                on_change=lambda e: self._set(page_size=e.value),
            ).classes("min-w-24").props("data-filter=page-size")
        with ui.row().classes("w-full items-end gap-3"):
            categories = {ANY: "Any error", **{c.value: c.value for c in ErrorCategory}}
            ui.select(
                categories,
                value=s.category,
                label="Error category",
                on_change=lambda e: self._set(category=e.value),
            ).classes("min-w-40").props("data-filter=category")
            for key, label, hint in (
                ("service", "Service", "of the latest attempt"),
                ("group_key", "Group", "e.g. a student"),
                ("created_after", "Created from (UTC)", "2025-01-31 14:00"),
                ("created_before", "Created before (UTC)", "2025-01-31"),
            ):
                ui.input(
                    label,
                    value=getattr(s, key),
                    placeholder=hint,
                    on_change=lambda e, key=key: self._set(**{key: e.value or ""}),
                ).classes("min-w-40").props(f"clearable debounce=400 data-filter={key}")
            ui.space()
            # BulkActions fills it once the list's filters exist (see __init__).
            self.bulk_slot = ui.row().classes("items-end gap-2")

    def _pager(self) -> None:
        with ui.row().classes("w-full items-center justify-end gap-2"):
            self.error = ui.label("").classes("text-negative")
            self.info = ui.label("").classes("text-grey-7 text-xs mr-auto").props("data-list-info")
            self.prev_button = ui.button(
                "Previous", icon="chevron_left", on_click=self.previous_page
            )
            self.prev_button.props("flat dense data-action=previous-page")
            self.page_label = ui.label("Page 1").props("data-page-label")
            self.next_button = ui.button("Next", on_click=self.next_page)
            self.next_button.props("flat dense icon-right=chevron_right data-action=next-page")

    async def _read(self, filters: JobFilter) -> JobPage:
        s = self.state
        job_id = parse_job_id(filters.text) if filters.text else None
        if job_id is None:
            return await self.store.list_jobs(filters, s.sort, s.cursors[-1], s.page_size)
        # A pasted job id: one primary-key read instead of a text search of the table.
        try:
            job = await self.store.get_job(job_id)
        except JobNotFound:
            return JobPage([], None)
        return JobPage([job] if matches(job, filters) else [], None)

    def set_job_types(self, job_types: Iterable[str]) -> None:
        """Offer the job types known to the queue, keeping the chosen one."""
        known = sorted({*job_types, *(k for k in self.job_type.options if k)})
        if known != [k for k in self.job_type.options if k]:
            self.job_type.set_options(
                {ANY: "Any type", **{t: t for t in known}}, value=self.job_type.value
            )

    async def _set(self, **changes: Any) -> None:
        changed = False
        for key, raw in changes.items():
            value = ANY if raw is None else raw
            if getattr(self.state, key) != value:
                setattr(self.state, key, value)
                changed = True
        if not changed:
            return
        self.state.cursors = [None]
        await self.refresh(moved=True)

    async def next_page(self) -> None:
        """Go to the page after this one."""
        if self.state.next_cursor:
            self.state.cursors.append(self.state.next_cursor)
            await self.refresh(moved=True)

    async def previous_page(self) -> None:
        """Go back one page."""
        if self.state.page > 0:
            self.state.cursors.pop()
            await self.refresh(moved=True)

    def filters(self) -> JobFilter:
        """The store filter of the chosen controls (``ValueError`` names a bad field)."""
        s = self.state
        return build_filter(
            s.status,
            s.job_type,
            s.priority,
            s.text,
            category=s.category,
            service=s.service,
            group_key=s.group_key,
            created_after=s.created_after,
            created_before=s.created_before,
        )

    async def refresh(self, moved: bool = False, force: bool = False) -> None:
        """Re-read the current page under the current filters.

        A timer tick (neither ``moved`` nor ``force``) is skipped while the last read
        was slow, so a costly search is not re-run against the database every tick.
        """
        started = time.monotonic()
        if not (moved or force) and started < self.next_tick_at:
            return
        if moved:
            self.generation += 1
        generation, s = self.generation, self.state
        try:
            filters = self.filters()
            page = await self._read(filters)
        except (ValueError, InvalidInput) as exc:
            self.error.set_text(str(exc))
            return
        cost = time.monotonic() - started
        self.next_tick_at = started + cost * SLOW_READ_FACTOR
        if generation != self.generation:
            return
        self.info.set_text(
            f"This list took {cost:.1f} s to read; it refreshes every "
            f"{cost * SLOW_READ_FACTOR:.0f} s. Filters make it faster."
            if cost > SLOW_READ_S
            else ""
        )
        self.error.set_text("")
        s.next_cursor = page.next_cursor
        rows = [job_row(j) for j in page.jobs]
        if rows != self.table.rows:  # unchanged rows are not re-sent, so nothing flickers
            self.table.rows = rows
            self.table.update()
        self.page_label.set_text(f"Page {s.page + 1}")
        self.prev_button.set_enabled(s.page > 0)
        self.next_button.set_enabled(page.next_cursor is not None)
