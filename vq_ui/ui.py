"""vq_ui as a vq plugin: the web server of ``vq run`` and the ``users``, ``tokens`` and
``e2e`` commands. Registered through the ``vq`` entry-point group like any plugin.

Imports of the web stack happen inside the hooks, so a worker-only host without the
``ui`` extra still loads this module (and simply gets no admin page).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from vq_core import hookimpl

if TYPE_CHECKING:
    import click

    from vq_core.config import Settings
    from vq_core.store import Store
    from vq_core.web_server import WebServer

log = logging.getLogger("vq.ui")


@hookimpl
def vq_web_server(settings: Settings, store: Store) -> WebServer | None:
    """The admin page and the API on ``settings.host:settings.port``."""
    try:
        from vq_ui.server import WebServer as UiServer
    except ImportError as exc:
        log.warning("the admin page needs the ui extra (pip install 'vq[ui]'): %s", exc)
        return None
    return UiServer(settings, store)


@hookimpl
def vq_add_commands(cli: click.Group) -> None:
    """Add ``vq users``, ``vq tokens`` and ``vq e2e``."""
    try:
        from vq_ui.commands import add_commands
    except ImportError as exc:
        log.debug("vq_ui commands unavailable: %s", exc)
        return
    add_commands(cli)
