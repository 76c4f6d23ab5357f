"""The web app: REST API, login, rendered media and (when installed) the admin page.

One FastAPI app holds everything, so a single port serves the page, the API and
the videos; it keeps no state of its own, so several can run behind a balancer.
"""

from __future__ import annotations

import importlib
import logging

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from vq_core import __version__
from vq_core.config import Settings
from vq_core.store import Store
from vq_ui import http_guard
from vq_ui.api import accounts, alert_sinks, bulk, event_stream, types
from vq_ui.api import jobs as api
from vq_ui.api.errors import install_error_handlers
from vq_ui.auth import access as auth

log = logging.getLogger("vq.ui")
ADMIN_PAGE_MODULE = "vq_ui.admin.page"
DOCS_PATH = "/api/v1/docs"
# Swagger UI's script, style and icon, served from the fastapi-offline package: the
# docs page works offline and loads nothing from another origin.
DOCS_ASSETS_PATH = "/api/v1/docs/assets"


def create_app(
    settings: Settings,
    store: Store,
    *,
    session_secret: str | None = None,
    admin_page: bool = True,
) -> FastAPI:
    """Build the app over ``store``.

    :param session_secret: the cookie signing key; ``None`` reads (or creates) it in
        the database on first use, which is what several instances need to share it.
    :param admin_page: add the NiceGUI page when installed (False: API and login only).
    """
    app = FastAPIOffline(
        title="vq",
        version=__version__,
        description="Job queue for video generation. See docs/api.md.",
        openapi_url="/api/v1/openapi.json",
        docs_url=DOCS_PATH,
        redoc_url=None,
        static_url=DOCS_ASSETS_PATH,
        favicon_url=f"{DOCS_ASSETS_PATH}/favicon.png",
        swagger_ui_oauth2_redirect_url=f"{DOCS_PATH}/oauth2-redirect",
        # Else Swagger UI shows a badge fetched from Swagger's online validator.
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.vq_settings = settings
    app.state.vq_store = store
    install_error_handlers(app)
    auth.install(app, settings, store, session_secret)
    http_guard.install(app, settings)
    # The bulk actions' static paths (/jobs/retry) before the jobs' /jobs/{job_id} routes.
    app.include_router(bulk.router)
    app.include_router(api.router)
    app.include_router(types.router)
    app.include_router(alert_sinks.router)
    app.include_router(accounts.router)
    # The SSE streams, and the process's one event hub behind them.
    event_stream.install(app, settings, store)
    media = settings.resolved_media_dir
    media.mkdir(parents=True, exist_ok=True)
    # Public on purpose: clients of the platform fetch result videos by URL.
    app.mount("/media", StaticFiles(directory=media), name="media")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/queue", status_code=307)

    # Last: NiceGUI mounts itself at "/", which would shadow anything added after it.
    if admin_page:
        register_admin_page(app, settings, store)
    return app


def register_admin_page(app: FastAPI, settings: Settings, store: Store) -> bool:
    """Add the NiceGUI admin page if ``vq_ui.admin.page`` is installed; False otherwise."""
    try:
        module = importlib.import_module(ADMIN_PAGE_MODULE)
    except ImportError as exc:
        if exc.name not in (ADMIN_PAGE_MODULE, "nicegui"):
            raise
        log.info("admin page not available (%s); serving the API only", exc)
        return False
    module.register(app, settings, store)
    return True
