"""Cancel and retry from the admin page: role check, confirmation, store call, notification."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

from nicegui import ui

from vq_core.errors import InvalidTransition, JobNotFound
from vq_core.models import Actor
from vq_core.store import Store
from vq_ui.admin.format import short_id

log = logging.getLogger(__name__)


def parse_job_id(raw: object) -> uuid.UUID | None:
    """The job id a browser sent back, or ``None`` if it is not one (a stale or forged event)."""
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        return None


class Actions:
    """Operator actions shared by the job list and the details dialog.

    ``may_act`` is checked here too, not only by hiding buttons, because a browser
    can send any event it likes over the websocket.
    """

    def __init__(
        self,
        store: Store,
        username: str,
        may_act: bool,
        after_change: Callable[[], Awaitable[None]],
        authorize: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.store = store
        self.authorize = authorize
        self.username = username
        self.may_act = may_act
        self.after_change = after_change
        with ui.dialog() as self.confirm, ui.card().props("data-dialog=confirm-cancel"):
            self.confirm_text = ui.label("")
            with ui.row().classes("w-full justify-end"):
                ui.button("Keep it", on_click=lambda: self.confirm.submit(False)).props(
                    "flat data-action=keep"
                )
                ui.button(
                    "Cancel job", color="negative", on_click=lambda: self.confirm.submit(True)
                ).props("data-action=confirm-cancel")

    async def cancel(self, raw_id: object) -> None:
        """Ask for confirmation, then cancel (a running job is asked to stop)."""
        job_id = self._checked(raw_id)
        if job_id is None:
            return
        self.confirm_text.set_text(
            f"Cancel job {short_id(job_id)}? A running render is stopped and its work lost."
        )
        if await self.confirm is not True:
            return
        await self._run("cancel", job_id)

    async def retry(self, raw_id: object) -> None:
        """Send a failed or cancelled job back to the queue."""
        job_id = self._checked(raw_id)
        if job_id is not None:
            await self._run("retry", job_id)

    def _checked(self, raw_id: object) -> uuid.UUID | None:
        if not self.may_act:
            ui.notify("Your role may not change jobs", type="negative")
            return None
        job_id = parse_job_id(raw_id)
        if job_id is None:
            ui.notify(f"Not a job id: {str(raw_id)[:40]!r}", type="negative")
        return job_id

    async def _run(self, action: str, job_id: uuid.UUID) -> None:
        short = short_id(job_id)
        if self.authorize is not None and not await self.authorize():
            return  # signed out or role changed meanwhile: the page is leaving
        try:
            if action == "cancel":
                job = await self.store.cancel(job_id, actor=Actor(self.username, "page"))
            else:
                job = await self.store.retry(job_id, actor=Actor(self.username, "page"))
        except (InvalidTransition, JobNotFound) as exc:
            ui.notify(str(exc), type="warning", multi_line=True)
        except Exception as exc:  # the page must survive a database hiccup
            log.exception("%s of job %s failed", action, job_id)
            ui.notify(f"Could not {action} job {short}: {exc}", type="negative", multi_line=True)
        else:
            if action == "cancel" and job.status != "cancelled":
                ui.notify(f"Job {short} asked to stop; its worker will cancel it", type="info")
            elif action == "cancel":
                ui.notify(f"Job {short} cancelled", type="positive")
            else:
                ui.notify(f"Job {short} queued again", type="positive")
        await self.after_change()
