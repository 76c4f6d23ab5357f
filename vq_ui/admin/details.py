"""The job details dialog: payload, result with its video playing, error, progress, history.

The dialog is built once per page and refreshed in place by the page's timer, so an
open dialog survives refreshes; the video element is only rebuilt when the video URL
changes, so playback is not restarted every few seconds.

Python stack traces (with the server's paths) are for admins: for viewers and operators
the dialog shows the error without its stack, and the history without the stacks of
failed attempts. A rejected input (``INVALID_INPUT``, a student's invalid payload) shows
its fields and messages to everyone and no stack: the stack would only point at our
validation code. The history is one line per event; its raw details fold under it.
Completion callbacks show each delivery and its attempts; admins may redeliver one
(their role is checked again when the button is pressed).
"""

from __future__ import annotations

import logging
import uuid

from nicegui import ui

from vq_core.errors import JobNotFound
from vq_core.models import Actor, Job, JobEvent, JobStatus
from vq_core.store import Store
from vq_core.store.callbacks import CallbackDelivery
from vq_ui.admin.actions import Actions, parse_job_id
from vq_ui.admin.format import (
    STATUS_COLORS,
    attempts,
    can_cancel,
    can_retry,
    event_row,
    is_validation_error,
    pretty_json,
    progress_text,
    render_origin,
    safe_url,
    short_id,
    timestamp,
    validation_problems,
)

log = logging.getLogger(__name__)

# The newest events shown; a long render logs many progress events.
MAX_EVENTS = 200
EVENT_COLUMNS = [
    {"name": "at", "label": "At (UTC)", "field": "at", "align": "left"},
    {"name": "event", "label": "Event", "field": "event", "align": "left"},
    {"name": "worker", "label": "Worker", "field": "worker", "align": "left"},
    {
        "name": "summary",
        "label": "What happened",
        "field": "summary",
        "align": "left",
        "style": "white-space: normal; word-break: break-word",
    },
    {"name": "raw", "label": "Details", "field": "raw", "align": "left"},
]
# The raw details of an event, folded: one click away, never a wall of JSON per row.
_RAW_CELL = """
<q-td :props="props">
  <details v-if="props.value" data-event-raw>
    <summary class="cursor-pointer text-primary text-xs">raw</summary>
    <pre class="whitespace-pre-wrap break-all font-mono text-xs bg-grey-2 p-2 rounded"
      style="max-width: 36rem">{{ props.value }}</pre>
  </details>
</q-td>
"""
_PRE = "whitespace-pre-wrap break-all font-mono text-xs bg-grey-2 p-2 rounded w-full"
_META = ("job_type", "priority", "retries", "worker", "created", "started", "completed", "updated")


def _section(title: str, key: str) -> ui.column:
    column = ui.column().classes("w-full gap-1").props(f"data-section={key}")
    with column:
        ui.label(title).classes("text-sm font-medium uppercase text-grey-7 mt-2")
    return column


class JobDetails:
    """One dialog per page; ``show(job_id)`` fills and opens it.

    :param show_stack: show stack traces (admins only).
    :param admin: offer to redeliver completion callbacks (admins only).
    """

    def __init__(
        self, store: Store, actions: Actions, *, show_stack: bool = False, admin: bool = False
    ) -> None:
        self.store = store
        self.actions = actions
        self.show_stack = show_stack
        self.admin = admin
        self.callback_key: list[tuple[uuid.UUID, str, int, int]] = []
        self.job_id: uuid.UUID | None = None
        self.video_url: str | None = None
        with (
            ui.dialog().props("full-width") as self.dialog,
            ui.card().classes("w-full max-w-5xl mx-auto").props("data-dialog=details"),
        ):
            self.dialog.on_value_change(self._closed)
            self._header()
            with ui.scroll_area().classes("w-full h-[70vh]"):
                self._body()

    def _header(self) -> None:
        with ui.row().classes("w-full items-center"):
            self.title = ui.label("").classes("text-lg font-mono").props("data-details-id")
            self.status = ui.badge("").props("data-details-status")
            ui.space()
            if self.actions.may_act:
                self.cancel_button = ui.button(
                    "Cancel",
                    icon="cancel",
                    color="negative",
                    on_click=lambda: self.actions.cancel(self.job_id),
                )
                self.cancel_button.props("data-action=details-cancel")
                self.retry_button = ui.button(
                    "Retry", icon="replay", on_click=lambda: self.actions.retry(self.job_id)
                )
                self.retry_button.props("data-action=details-retry")
            ui.button(icon="close", on_click=self.dialog.close).props(
                "flat round data-action=close"
            )
        self.meta: dict[str, ui.label] = {}
        with ui.grid(columns=4).classes("w-full gap-x-6 gap-y-0 text-sm"):
            for key in _META:
                with ui.row().classes("gap-1"):
                    ui.label(key.replace("_", " ") + ":").classes("text-grey-7")
                    self.meta[key] = ui.label("").props(f"data-meta={key}")
        with ui.row().classes("w-full items-center") as self.progress_row:
            self.progress = ui.linear_progress(value=0, show_value=False).classes("grow")
            self.progress_label = ui.label("").props("data-details-progress")

    def _body(self) -> None:
        with _section("Result", "result") as self.result_section:
            self.origin = (
                ui.label("").classes("text-warning text-sm").props("data-render-origin")
            )
            self.media = ui.row().classes("w-full items-start gap-4")
            self.result_json = ui.label("").classes(_PRE)
        with _section("Error", "error") as self.error_section:
            self.error_head = (
                ui.label("").classes("text-negative font-medium").props("data-error-head")
            )
            self.error_message = (
                ui.label("").classes("whitespace-pre-wrap").props("data-error-message")
            )
            self.error_stack = ui.label("").classes(_PRE).props("data-error-stack")
        with _section("Attempts", "attempts") as self.attempts_section:
            self.attempt_lines = ui.column().classes("w-full gap-0 text-sm font-mono")
        self.attempt_texts: list[str] = []
        with _section("Callbacks", "callbacks") as self.callbacks_section:
            self.callback_rows = ui.column().classes("w-full gap-1 text-sm")
        with _section("Payload", "payload"):
            self.payload = ui.label("").classes(_PRE).props("data-payload")
        with _section("History", "events"):
            self.events = ui.table(columns=EVENT_COLUMNS, rows=[], row_key="id").classes("w-full")
            self.events.props("flat dense hide-bottom")
            self.events.add_slot("body-cell-raw", _RAW_CELL)

    async def show(self, raw_id: object) -> None:
        """Open the dialog on a job (from a table event, so the id is checked)."""
        job_id = parse_job_id(raw_id)
        if job_id is None:
            ui.notify(f"Not a job id: {str(raw_id)[:40]!r}", type="negative")
            return
        self.job_id = job_id
        self._set_video(None, None, None)
        if await self.refresh():
            self.dialog.open()

    async def refresh(self) -> bool:
        """Re-read the open job; False (and a notice) when it no longer exists."""
        job_id = self.job_id
        if job_id is None:
            return False
        try:
            job = await self.store.get_job(job_id)
            events = await self.store.get_events(job_id)
            callbacks = await self.store.job_callbacks(job_id)
        except JobNotFound:
            ui.notify(f"Job {short_id(job_id)} no longer exists", type="warning")
            self.dialog.close()
            return False
        if job_id == self.job_id:
            self._fill(job, events)
            self._fill_callbacks(callbacks)
        return True

    def _closed(self) -> None:
        if not self.dialog.value:
            self.job_id = None
            self._set_video(None, None, None)  # stop playback and free the connection

    def _fill(self, job: Job, events: list[JobEvent]) -> None:
        self.title.set_text(str(job.id))
        self.status.set_text(job.status.value)
        self.status.props["color"] = STATUS_COLORS[job.status]
        self.status.props["data-status"] = job.status.value
        tries = attempts(events)
        # A finished job no longer has a worker; the one of its last attempt is named.
        worker = job.worker_id or (f"{tries[-1].worker} (last attempt)" if tries else "-")
        values = {
            "job_type": job.job_type,
            "priority": job.priority.label,
            "retries": f"{job.retry_count} of {job.max_retries} used",
            "worker": worker,
            "created": timestamp(job.created_at),
            "started": timestamp(job.started_at),
            "completed": timestamp(job.completed_at),
            "updated": timestamp(job.updated_at),
        }
        for key, value in values.items():
            self.meta[key].set_text(value)
        if self.actions.may_act:
            self.cancel_button.set_visibility(can_cancel(job))
            self.retry_button.set_visibility(can_retry(job))
        self._fill_progress(job)
        self._fill_result(job)
        self._fill_error(job)
        self._fill_attempts([t.line() for t in tries])
        self.payload.set_text(pretty_json(job.payload))
        numbers: dict[int, int] = {}
        for event in events:
            if event.event == "claimed":
                numbers[event.id] = len(numbers) + 1
        newest = events[-MAX_EVENTS:][::-1]
        rows = [event_row(e, numbers.get(e.id), show_stack=self.show_stack) for e in newest]
        if rows != self.events.rows:
            self.events.rows = rows
            self.events.update()

    def _fill_attempts(self, lines: list[str]) -> None:
        self.attempts_section.set_visibility(bool(lines))
        if lines == self.attempt_texts:
            return
        self.attempt_texts = lines
        self.attempt_lines.clear()
        with self.attempt_lines:
            for number, line in enumerate(lines, start=1):
                ui.label(line).props(f"data-attempt={number}")

    def _fill_callbacks(self, deliveries: list[CallbackDelivery]) -> None:
        self.callbacks_section.set_visibility(bool(deliveries))
        key = [(d.id, d.state, d.attempts, len(d.attempt_log)) for d in deliveries]
        if key == self.callback_key:
            return
        self.callback_key = key
        self.callback_rows.clear()
        with self.callback_rows:
            for d in deliveries:
                with ui.column().classes("w-full gap-0").props(f"data-callback={d.id}"):
                    with ui.row().classes("items-center gap-2"):
                        ui.badge(d.state).props(f"data-callback-state={d.state}")
                        ui.label(
                            f"delivery {d.id} · {d.body.get('status')} · to {d.url} · "
                            f"{d.attempts} attempt{'s' if d.attempts != 1 else ''}"
                        ).classes("font-mono")
                        if self.admin and d.state != "pending":
                            ui.button(
                                "Redeliver",
                                icon="send",
                                on_click=lambda _e, did=d.id: self._redeliver(did),
                            ).props("flat dense data-action=redeliver")
                    for a in d.attempt_log:
                        code = f" HTTP {a.status_code}" if a.status_code is not None else ""
                        detail = f" · {a.detail}" if a.detail else ""
                        ui.label(
                            f"#{a.attempt} {a.at[:19].replace('T', ' ')} {a.outcome}{code}{detail}"
                        ).classes("font-mono text-xs text-grey-8 break-all").props(
                            "data-callback-attempt"
                        )

    async def _redeliver(self, delivery_id: uuid.UUID) -> None:
        job_id = self.job_id
        if not self.admin or job_id is None:
            ui.notify("Only admins may redeliver a callback", type="negative")
            return
        if self.actions.authorize is not None and not await self.actions.authorize():
            return
        try:
            await self.store.redeliver_callback(
                job_id, delivery_id, Actor(self.actions.username, "page")
            )
        except JobNotFound as exc:
            ui.notify(str(exc), type="warning")
            return
        except Exception as exc:  # the page must survive a database hiccup
            log.exception("redelivery of callback %s failed", delivery_id)
            ui.notify(f"Could not redeliver: {exc}", type="negative", multi_line=True)
            return
        ui.notify(f"Callback {short_id(delivery_id)} will be sent again", type="positive")
        await self.refresh()

    def _fill_progress(self, job: Job) -> None:
        progress = job.progress or {}
        pct = progress.get("percent")
        self.progress.set_value(float(pct) / 100 if isinstance(pct, int | float) else 0.0)
        text = progress_text(job.progress) or "started, no progress reported yet"
        # A failed or cancelled job keeps its last progress: where it stopped.
        self.progress_label.set_text(
            text if job.status == JobStatus.RUNNING else f"stopped at {text}"
        )
        visible = job.status == JobStatus.RUNNING or (
            bool(job.progress) and job.status in (JobStatus.FAILED, JobStatus.CANCELLED)
        )
        self.progress_row.set_visibility(visible)

    def _fill_result(self, job: Job) -> None:
        result = job.result or {}
        self.result_section.set_visibility(bool(job.result))
        self._set_video(safe_url(result.get("video_url")), safe_url(result.get("thumbnail_url")),
                        safe_url(result.get("captions_url")))
        origin = render_origin(job.result)
        self.origin.set_text(origin or "")
        self.origin.set_visibility(origin is not None)
        self.result_json.set_text(pretty_json(job.result) if job.result else "")

    def _fill_error(self, job: Job) -> None:
        error = job.error or {}
        self.error_section.set_visibility(bool(job.error))
        head = [str(error.get("type") or "UNKNOWN")]
        if "retryable" in error:
            head.append("retryable" if error["retryable"] else "not retryable")
        if error.get("attempt") is not None:
            head.append(f"attempt {error['attempt']}")
        for key in ("service", "call", "status_code"):
            if error.get(key) is not None:
                head.append(f"{key} {error[key]}")
        message = str(error.get("message") or "")
        if is_validation_error(error):
            # The input was wrong, not the server: the fields and what is wrong with
            # them, and no stack trace, for admins too.
            head.insert(1, "invalid input")
            self.error_head.set_text(" · ".join(head))
            problems = validation_problems(message)
            self.error_message.set_text("\n".join(f"{f}: {m}" for f, m in problems))
            self.error_stack.set_text("")
            self.error_stack.set_visibility(False)
            return
        self.error_head.set_text(" · ".join(head))
        self.error_message.set_text(message)
        stack = error.get("stack") if self.show_stack else None
        stack = stack or error.get("body_excerpt") or ""
        self.error_stack.set_text(str(stack))
        self.error_stack.set_visibility(bool(stack))

    def _set_video(
        self, video_url: str | None, thumbnail_url: str | None, captions_url: str | None
    ) -> None:
        if video_url == self.video_url and (video_url or not list(self.media)):
            return
        self.video_url = video_url
        self.media.clear()
        if not video_url and not thumbnail_url:
            return
        with self.media:
            if video_url:
                video = ui.video(video_url, autoplay=True, muted=True).classes("w-full max-w-xl")
                video.props("data-job-video playsinline preload=auto")
                if thumbnail_url:
                    video.props["poster"] = thumbnail_url
            with ui.column().classes("gap-1"):
                if thumbnail_url:
                    ui.image(thumbnail_url).classes("w-48").props("data-job-thumbnail")
                if video_url:
                    ui.link("Open video", video_url, new_tab=True).props("data-video-link")
                if captions_url:
                    ui.link("Captions (WebVTT)", captions_url, new_tab=True).props(
                        "data-captions-link"
                    )
