"""The admin page at ``/queue`` (NiceGUI on the API's FastAPI app).

``register(app, settings, store)`` adds the page and mounts NiceGUI; the page reads
everything through the same ``Store`` methods the CLI uses and refreshes itself on a
timer. Login, logout and the session cookie belong to ``vq_ui.auth.access``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from nicegui import core, ui

from vq_core.config import Settings
from vq_core.models import ErrorCategory, JobStatus, Priority
from vq_core.store import Store
from vq_ui.admin.actions import Actions
from vq_ui.admin.alert_sinks import AlertSinksPanel
from vq_ui.admin.details import JobDetails
from vq_ui.admin.format import MAX_SEARCH, SORT_CHOICES
from vq_ui.admin.health import Health, Panel, alerts_panel
from vq_ui.admin.jobs import JobList, ListState
from vq_ui.admin.overview import Overview, shared_stats
from vq_ui.admin.types import TypesPanel
from vq_ui.auth.access import current_user
from vq_ui.auth.roles import User

log = logging.getLogger(__name__)

PAGE_PATH = "/queue"
# Where vq_ui.auth.access.current_user caches its answer in the request scope.
_USER_CACHE_KEY = "vq.user"
DEFAULT_REFRESH_S = 5.0
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="6" fill="#1976d2"/>'
    '<path d="M12 9v14l11-7z" fill="#fff"/></svg>'
)


def refresh_interval(settings: Settings) -> float:
    """Seconds between refreshes: ``[plugin_config.ui] refresh_seconds``, 0.5 to 5."""
    raw = settings.plugin_settings("ui").get("refresh_seconds", DEFAULT_REFRESH_S)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"plugin_config.ui.refresh_seconds: not a number: {raw!r}") from None
    # The issue asks for at least every 5 s; faster than 0.5 s only loads the database.
    return min(DEFAULT_REFRESH_S, max(0.5, value))


def initial_state(params: Any) -> ListState:
    """Filters from the query string (``/queue?status=failed&type=doubt&q=gravity``,
    also ``category``, ``service`` and ``group``), so
    alerts and runbooks can link to a filtered list; unknown values are ignored."""
    state = ListState()
    status = params.get("status", "")
    if status in {s.value for s in JobStatus}:
        state.status = status
    priority = params.get("priority", "")
    if priority in {p.label for p in Priority}:
        state.priority = priority
    state.job_type = params.get("type", "")[:100]
    state.text = params.get("q", "")[:MAX_SEARCH]
    category = params.get("category", "")
    if category in {c.value for c in ErrorCategory}:
        state.category = category
    state.service = params.get("service", "")[:200]
    state.group_key = params.get("group", "")[:200]
    if params.get("sort", "") in SORT_CHOICES:
        state.sort = params["sort"]
    return state


async def signed_in(request: Request) -> User | None:
    """Who the page's original request belongs to *now*: the page lives on after its
    HTTP request, so each refresh and action asks again, and a user who signed out
    elsewhere, was disabled, changed password or lost a role stops acting at once."""
    scope = dict(request.scope)
    scope.pop(_USER_CACHE_KEY, None)  # current_user caches its answer in the scope
    return await current_user(Request(scope))


class AdminPage:
    """One visitor's page: its panels and the refresh that feeds them."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        request: Request,
        user: User,
        state: ListState,
        interval: float,
    ) -> None:
        self.store = store
        self.request = request
        self.user = user
        # Slightly younger than a tick, so each page still sees every tick's numbers.
        self.stats = shared_stats(store, max_age=interval * 0.8)
        self._refreshing = False
        self._header(user)
        with ui.column().classes("w-full max-w-screen-2xl mx-auto gap-4"):
            self.banner = (
                ui.label("")
                .classes("w-full bg-red-1 text-negative p-2 rounded")
                .props("data-banner")
            )
            self.banner.set_visibility(False)
            self.overview = Overview(store)
            self.overview.build_cards()
            with ui.grid().classes("w-full gap-4 grid-cols-1 lg:grid-cols-2 items-start"):
                self.overview.build_chart()
                with ui.column().classes("w-full gap-4"):
                    self.health = Health()
                    with ui.column().classes("w-full gap-4").props("data-panel=alerts"):
                        self.alerts: Panel | None = alerts_panel(store, settings)
                        self.sinks = AlertSinksPanel(store, settings, user, self.still_allowed)
            self.types = TypesPanel(
                store, settings, user.label, user.can("act"), self.still_allowed
            )
            self.actions = Actions(
                store, user.label, user.can("act"), self.changed, self.still_allowed
            )
            self.details = JobDetails(
                store, self.actions, show_stack=user.can("admin"), admin=user.can("admin")
            )
            self.jobs = JobList(store, self.actions, self.details.show, state)

    def _header(self, user: User) -> None:
        with ui.header().classes("items-center bg-primary text-white"):
            ui.label("vq").classes("text-xl font-bold")
            ui.label("queue admin").classes("text-base opacity-80")
            ui.space()
            self.updated = ui.label("").classes("text-xs opacity-80").props("data-updated")
            ui.label(f"{user.username} · {user.role.value}").props("data-user")
            # A plain form: signing out is POST /logout (a GET would let any site sign
            # people out), and the browser's Origin passes the same-origin check.
            with ui.element("form").props("method=post action=/logout").classes("m-0"):
                ui.button("Sign out", icon="logout").props(
                    "flat color=white type=submit data-action=logout"
                )

    async def still_allowed(self) -> bool:
        """True while the session is valid with the same role; else leave the page (to
        the sign-in form, or reloaded with the new role's buttons)."""
        user = await signed_in(self.request)
        if user is None:
            ui.navigate.to("/login?" + urlencode({"next": PAGE_PATH}))
            return False
        if user.role != self.user.role:
            ui.navigate.reload()
            return False
        return True

    async def changed(self) -> None:
        """After an action: show its effect now rather than at the next tick."""
        try:
            await self.jobs.refresh(force=True)
            await self.details.refresh()
            await self.types.refresh()
        except Exception as exc:
            self._failed(exc)

    async def refresh(self) -> None:
        """Re-read everything; a failure shows a banner and keeps the last numbers."""
        if self._refreshing:  # a slow database must not pile up refreshes
            return
        self._refreshing = True
        try:
            if not await self.still_allowed():
                return
            (stats, series), workers, services = await asyncio.gather(
                self.stats.read(), self.store.list_workers(), self.store.list_service_health()
            )
            self.overview.show(stats, series)
            self.health.show(workers, services)
            self.jobs.set_job_types(stats["by_type"])
            await self.jobs.refresh()
            await self.details.refresh()
            await self.types.refresh()
            if self.alerts is not None:
                await self.alerts.refresh()
            await self.sinks.refresh()
        except Exception as exc:
            self._failed(exc)
        else:
            self.banner.set_visibility(False)
            self.updated.set_text(f"updated {datetime.now(UTC):%H:%M:%S} UTC")
        finally:
            self._refreshing = False

    def _failed(self, exc: Exception) -> None:
        log.warning("admin page refresh failed: %s", exc, exc_info=exc)
        self.banner.set_text(f"Cannot refresh from the database: {exc}. Showing older numbers.")
        self.banner.set_visibility(True)


def _has_route(app: FastAPI, path: str) -> bool:
    return any(getattr(route, "path", None) == path for route in app.router.routes)


def _allow_remount() -> None:
    # NiceGUI keeps one global app. When a process builds a second FastAPI app (tests
    # that call create_app per test), run_with() would fail adding its middleware to the
    # already started global app; clearing the built stack lets it be mounted again.
    if core.app.middleware_stack is not None:
        core.app.middleware_stack = None
        core.app.user_middleware.clear()


def register(app: FastAPI, settings: Settings, store: Store) -> None:
    """Add ``/queue`` (and ``/admin`` leading to it) to ``app`` and mount NiceGUI on it.

    Call it after the app's own routes are added: NiceGUI is mounted at ``/`` and
    answers every path nothing before it claimed. Calling it again (for another app)
    moves the page to the new store.
    """
    interval = refresh_interval(settings)

    @ui.page(PAGE_PATH, title="vq · queue", response_timeout=10)
    async def queue_page(request: Request) -> Response | None:
        user = await current_user(request)
        if user is None:
            target = PAGE_PATH + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
        state = initial_state(request.query_params)
        page = AdminPage(settings, store, request, user, state, interval)
        await page.changed()  # the job list travels with the HTML; it costs milliseconds
        # The counters need a scan of the table (a few hundred ms at a million jobs), so
        # they arrive right after the browser connects: the first tick runs at once.
        ui.timer(interval, page.refresh)
        return None

    if not _has_route(app, "/admin"):
        app.add_api_route("/admin", _to_queue, include_in_schema=False)
    _allow_remount()
    ui.run_with(app, title="vq", favicon=FAVICON, show_welcome_message=False)


async def _to_queue(request: Request) -> RedirectResponse:
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(PAGE_PATH + query, status_code=307)


# Re-exported so issue 5 finds the alerts slot from the page module too.
__all__ = ["AdminPage", "alerts_panel", "refresh_interval", "register"]
