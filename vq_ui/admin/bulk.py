"""Bulk actions of the job list: retry or cancel every job its current filters match.

The page counts the matches first (``Store.count_actionable``) and asks "Retry 1,000
jobs?"; only a confirmation calls ``Store.bulk_retry`` / ``bulk_cancel``, with the same
filters, so the action takes what the count described (less, if some jobs moved
meanwhile: the notification says how many it acted on). The list without any filter
would act on the whole queue: that needs a second, explicit confirmation.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from nicegui import ui

from vq_core.errors import InvalidInput
from vq_core.models import Actor, JobFilter
from vq_core.store import Store
from vq_ui.admin.actions import Actions, parse_job_id
from vq_ui.admin.format import describe_filter

log = logging.getLogger(__name__)

# What each action does to the matching jobs, for the confirmation.
_EFFECT = {
    "retry": "Failed and cancelled jobs go back to the queue with a fresh set of retries.",
    "cancel": "Queued jobs are cancelled at once; running ones are asked to stop and "
    "their work is lost.",
}


def question(action: str, count: int) -> str:
    """``Retry 1,000 jobs?`` / ``Cancel 1 job?``."""
    return f"{action.capitalize()} {count:,} job{'' if count == 1 else 's'}?"


class BulkActions:
    """The "Retry all matching" and "Cancel all matching" buttons and their dialog.

    :param current: the job list's filters now (raises ``ValueError`` on a bad one).
    :param after_change: awaited after an action, to show its effect at once.
    """

    def __init__(
        self,
        store: Store,
        actions: Actions,
        current: Callable[[], JobFilter],
        after_change: Callable[[], Awaitable[None]],
    ) -> None:
        self.store = store
        self.actions = actions
        self.current = current
        self.after_change = after_change
        if actions.may_act:
            with ui.row().classes("gap-2").props("data-bulk"):
                ui.button(
                    "Retry all matching", icon="replay", on_click=lambda: self.run("retry")
                ).props("outline dense data-action=bulk-retry")
                ui.button(
                    "Cancel all matching",
                    icon="cancel",
                    color="negative",
                    on_click=lambda: self.run("cancel"),
                ).props("outline dense data-action=bulk-cancel")
        with ui.dialog() as self.dialog, ui.card().props("data-dialog=bulk-confirm"):
            self.title = ui.label("").classes("text-lg font-medium").props("data-bulk-question")
            self.scope = ui.label("").classes("text-sm").props("data-bulk-filters")
            self.effect = ui.label("").classes("text-sm text-grey-8")
            self.everything = ui.checkbox(
                "Yes, every job in the queue: no filter is set",
                on_change=lambda e: self._everything(bool(e.value)),
            ).props("data-bulk-everything")
            with ui.row().classes("w-full justify-end"):
                ui.button("Keep them", on_click=lambda: self.dialog.submit(False)).props(
                    "flat data-action=bulk-keep"
                )
                self.confirm_button = ui.button(
                    "", color="negative", on_click=lambda: self.dialog.submit(True)
                ).props("data-action=bulk-confirm")

    async def run(self, action: str) -> None:
        """Count the matches, ask, and on confirmation act on them."""
        if not self.actions.may_act:  # a forged event from a viewer's browser
            ui.notify("Your role may not change jobs", type="negative")
            return
        if not await self._authorized():
            return
        try:
            filters = self.current()
        except (ValueError, InvalidInput) as exc:
            ui.notify(f"Fix the filters first: {exc}", type="warning", multi_line=True)
            return
        if filters.text and parse_job_id(filters.text) is not None:
            ui.notify("The search holds a job id: use that row's buttons", type="warning")
            return
        try:
            count = await self.store.count_actionable(filters, action)
        except Exception as exc:  # the page must survive a database hiccup
            log.exception("counting jobs to %s failed", action)
            ui.notify(f"Could not count the jobs: {exc}", type="negative", multi_line=True)
            return
        if count == 0:
            ui.notify(f"No matching job to {action}", type="info")
            return
        self.title.set_text(question(action, count))
        self.scope.set_text(f"Matching {describe_filter(filters)}.")
        self.effect.set_text(_EFFECT[action])
        empty = filters.is_empty()
        self.everything.set_value(False)
        self.everything.set_visibility(empty)
        self.confirm_button.set_text(f"{action.capitalize()} {count:,}")
        self.confirm_button.props(f"color={'negative' if action == 'cancel' else 'primary'}")
        self.confirm_button.set_enabled(not empty)
        if await self.dialog is not True:
            return
        if empty and not self.everything.value:  # the button was enabled by a forged event
            return
        await self._act(action, filters)

    def _everything(self, checked: bool) -> None:
        self.confirm_button.set_enabled(checked)

    async def _authorized(self) -> bool:
        authorize = self.actions.authorize
        return authorize is None or await authorize()

    async def _act(self, action: str, filters: JobFilter) -> None:
        if not await self._authorized():
            return  # signed out or role changed while the dialog was open
        actor = Actor(self.actions.username, "page")
        try:
            if action == "retry":
                result = await self.store.bulk_retry(filters, actor)
            else:
                result = await self.store.bulk_cancel(filters, actor)
        except Exception as exc:
            log.exception("bulk %s failed", action)
            ui.notify(f"Could not {action} the jobs: {exc}", type="negative", multi_line=True)
        else:
            done = "queued again" if action == "retry" else "cancelled"
            text = f"{result.acted:,} job{'' if result.acted == 1 else 's'} {done}"
            if result.running:
                text += f" ({result.running:,} of them running: asked to stop)"
            ui.notify(text, type="positive")
        await self.after_change()
