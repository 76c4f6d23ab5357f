"""The web server ``vq run`` starts beside the worker: uvicorn on the running event loop."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator

import uvicorn

from vq_core.config import ConfigError, Settings
from vq_core.store import Store
from vq_core.web_server import bind_socket
from vq_ui.api import event_stream
from vq_ui.app import create_app
from vq_ui.auth import users
from vq_ui.auth.access import SECRET_NAME, AuthConfig


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: ``vq run`` owns SIGINT/SIGTERM and stops
    the web server through the shared ``stop`` event (uvicorn would otherwise re-raise
    the signal after its shutdown and cut the worker's graceful drain short)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def first_admin_banner(password: str) -> str:
    """What ``vq run`` prints, once, after creating the first admin."""
    return (
        "vq: created the first user 'admin' with password "
        f"{password}\n"
        "    (shown only now; change it with `vq users passwd admin`)"
    )


class WebServer:
    """The admin page and the API on ``settings.host:settings.port``.

    The socket is bound at construction, so ``url`` is right even for port 0 and a
    busy port fails before the worker starts; so does a bad sign-in setting.
    """

    def __init__(self, settings: Settings, store: Store) -> None:
        try:
            AuthConfig.from_settings(settings)
        except ValueError as exc:
            raise ConfigError(f"invalid configuration: {exc}") from None
        self.settings = settings
        self.store = store
        self._sock = bind_socket(settings.host, settings.port)
        port = self._sock.getsockname()[1]
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        self.url = f"http://{host}:{port}"

    async def serve(self, stop: asyncio.Event) -> None:
        """Create the first admin if there is no user, then serve until ``stop`` is set."""
        try:
            password = await users.ensure_first_admin(self.store)
            if password is not None:
                print(first_admin_banner(password), file=sys.stdout, flush=True)
            secret = await users.shared_secret(self.store, SECRET_NAME)
            app = create_app(self.settings, self.store, session_secret=secret)
            config = uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,
                # uvicorn would trust X-Forwarded-For from any loopback peer; the app
                # trusts only the trusted_proxies setting (vq_ui.auth.access.install).
                proxy_headers=False,
                timeout_graceful_shutdown=5,
            )
            server = _Server(config)
            task = asyncio.create_task(server.serve(sockets=[self._sock]))
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            # End the event streams first: uvicorn's graceful shutdown waits for every
            # response to finish, and a live stream never would.
            await event_stream.hub_of(app).close()
            server.should_exit = True
            await task
            if not stop.is_set():
                # uvicorn returns instead of raising when start-up fails (port, lifespan).
                raise RuntimeError(f"the web server on {self.url} stopped unexpectedly")
        finally:
            self._sock.close()
