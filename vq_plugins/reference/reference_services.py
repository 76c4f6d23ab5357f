"""``vq services serve``: the orchestrator, Manim and Revideo contracts on one loopback server.

The server renders with the local engine, serves what it made under ``/media`` (with
range requests) and injects faults on demand, so tests, contract recordings and load
runs talk to a real HTTP peer. Point the clients at it like this::

    [plugin_config.orchestrator]
    base_url = "http://127.0.0.1:9000"

    [plugin_config.manim_revideo]
    manim_base_url = "http://127.0.0.1:9000/manim"
    revideo_base_url = "http://127.0.0.1:9000/revideo"

In Python, ``start_reference_server(media_dir)`` runs it in a background thread on a
free port. It needs the ``render`` extra and Starlette + uvicorn (the ``ui`` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vq_core import hookimpl
from vq_core.web_server import bind_socket

if TYPE_CHECKING:
    import uvicorn

    from vq_plugins.reference.app import ReferenceState, RenderOptions

DEFAULT_PORT = 9000


def _server(
    state: ReferenceState, log_level: str, graceful_s: float
) -> tuple[uvicorn.Server, threading.Event]:
    import uvicorn

    from vq_plugins.reference.app import create_app

    ready = threading.Event()
    _quiet_injected_drops()

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            ready.set()

    # No websockets and no lifespan: nothing to import that the server does not use.
    config = uvicorn.Config(
        create_app(state),
        log_level=log_level,
        access_log=False,
        lifespan="off",
        ws="none",
        http="h11",
        timeout_graceful_shutdown=int(graceful_s) or 1,
    )
    return _Server(config), ready


class _DropFilter(logging.Filter):
    """Hide the traceback uvicorn logs for a connection we dropped on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, ConnectionAbortedError) and "fault injection" in str(exc))


def _quiet_injected_drops() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropFilter) for f in logger.filters):
        logger.addFilter(_DropFilter())


class ReferenceServer:
    """A reference server running in a background thread."""

    def __init__(
        self,
        state: ReferenceState,
        server: uvicorn.Server,
        thread: threading.Thread,
        sock: socket.socket,
    ) -> None:
        self.state, self._server, self._thread, self._sock = state, server, thread, sock
        self.url: str = state.public_url
        self.media_dir: Path = state.media_dir

    def set_faults(self, **faults: Any) -> None:
        """Replace the global faults (keys of ``reference_faults.Faults``)."""
        from vq_plugins.reference.faults import faults_from

        self.state.faults.set(faults_from(faults))

    def clear_faults(self) -> None:
        """Behave well again."""
        from vq_plugins.reference.faults import Faults

        self.state.faults.set(Faults())

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        """The service requests seen so far (optionally only those to ``path``)."""
        return [e for e in list(self.state.log) if path is None or e["path"] == path]

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread; idempotent."""
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> ReferenceServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_reference_server(
    media_dir: Path,
    port: int = 0,
    host: str = "127.0.0.1",
    options: RenderOptions | None = None,
    log_level: str = "warning",
) -> ReferenceServer:
    """Start the reference services in a daemon thread and return once they accept requests.

    :param media_dir: where renders are written and served from.
    :param port: 0 picks a free port; ``handle.url`` says which.
    :param options: render size and lengths (tests pass tiny ones).
    :raises RuntimeError: the server did not start within 15 seconds.
    """
    from vq_plugins.reference.app import ReferenceState, RenderOptions

    media_dir.mkdir(parents=True, exist_ok=True)
    sock = bind_socket(host, port, inheritable=True)
    bound_port = sock.getsockname()[1]
    display = f"[{host}]" if ":" in host else host
    state = ReferenceState(media_dir, options or RenderOptions())
    state.public_url = f"http://{display}:{bound_port}"
    server, ready = _server(state, log_level, graceful_s=2)
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])),
        name=f"vq-reference-{bound_port}",
        daemon=True,
    )
    thread.start()
    if not ready.wait(15) or not thread.is_alive():
        server.should_exit = True
        sock.close()
        raise RuntimeError("the reference server did not start within 15 seconds")
    return ReferenceServer(state, server, thread, sock)


@click.group(name="services")
def services_group() -> None:
    """Video services: run the reference implementations, check a service."""


@services_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--media-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where renders go [default: <data_dir>/reference-media].",
)
@click.option("--width", default=640, show_default=True, type=click.IntRange(64, 3840))
@click.option("--height", default=360, show_default=True, type=click.IntRange(64, 2160))
@click.option("--fps", default=24, show_default=True, type=click.IntRange(1, 120))
@click.option(
    "--manim/--no-manim",
    default=None,
    help="Render /manim/render with Manim CE (the manim extra) or with the PyAV clip "
    "[default: Manim when it is installed].",
)
@click.option(
    "--manim-time-limit",
    default=120.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Kill a Manim render that runs longer and answer 504.",
)
@click.option(
    "--clip-origin",
    "clip_origins",
    multiple=True,
    metavar="URL",
    help="Another server's origin (http://127.0.0.1:9001) that /revideo/compose may fetch "
    "Manim clips from; repeatable. Its own /media files need none.",
)
@click.option(
    "--faults",
    "faults_json",
    default=None,
    help="Initial global faults as JSON, e.g. '{\"error_rate\": 0.1}'.",
)
def serve_command(
    host: str,
    port: int,
    media_dir: Path | None,
    width: int,
    height: int,
    fps: int,
    manim: bool | None,
    manim_time_limit: float,
    clip_origins: tuple[str, ...],
    faults_json: str | None,
) -> None:
    """Serve the orchestrator (/render), Manim (/manim/render) and Revideo
    (/revideo/compose) contracts, /health, and the rendered files under /media."""
    from vq_core.config import ConfigError, load_settings
    from vq_plugins.reference.app import ReferenceState, RenderOptions
    from vq_plugins.reference.faults import FaultError, faults_from
    from vq_plugins.reference.manim_runner import manim_installed
    from vq_plugins.services.http_service import is_http_url

    if manim and not manim_installed():
        raise click.UsageError("--manim: Manim is not installed (pip install -e '.[manim]')")
    if width % 2 or height % 2:
        raise click.BadParameter("width and height must be even", param_hint="--width/--height")
    if media_dir is None:
        try:
            media_dir = load_settings().data_dir / "reference-media"
        except ConfigError as exc:
            raise click.UsageError(f"{exc}; or pass --media-dir") from None
    for origin in clip_origins:
        if not is_http_url(origin):
            raise click.BadParameter(f"not an http(s) URL: {origin!r}", param_hint="--clip-origin")
    options = RenderOptions(
        width=width, height=height, fps=fps, manim=manim, manim_time_limit=manim_time_limit,
        clip_origins=clip_origins,
    )
    state = ReferenceState(media_dir, options)
    if faults_json:
        try:
            state.faults.set(faults_from(json.loads(faults_json)))
        except (ValueError, FaultError) as exc:
            raise click.BadParameter(str(exc), param_hint="--faults") from None
    media_dir.mkdir(parents=True, exist_ok=True)
    try:
        sock = bind_socket(host, port, inheritable=True)
    except OSError as exc:
        raise click.UsageError(f"cannot listen on {host}:{port}: {exc}") from None
    display = f"[{host}]" if ":" in host else host
    state.public_url = f"http://{display}:{sock.getsockname()[1]}"
    server, _ = _server(state, "info", graceful_s=5)
    # Listening before the banner: a client that reads the address and connects at once
    # waits in the backlog for uvicorn instead of being refused.
    sock.listen(2048)
    click.echo(f"reference services on {state.public_url} (media in {media_dir})")
    click.echo(f"  orchestrator base_url    = {state.public_url}")
    click.echo(f"  manim_base_url           = {state.public_url}/manim")
    click.echo(f"  revideo_base_url         = {state.public_url}/revideo", nl=True)
    uses_manim = manim_installed() if manim is None else manim
    click.echo(f"  manim renderer           = {'Manim CE' if uses_manim else 'PyAV clip'}")
    sys.stdout.flush()
    # uvicorn stops on SIGINT/SIGTERM, then re-raises the signal; both end here quietly.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.serve(sockets=[sock]))
    click.echo("reference services stopped")


def set_remote_faults(base_url: str, **faults: Any) -> dict[str, Any]:
    """Set the global faults of a reference server in another process (``POST /_faults``)."""
    import httpx  # only this command's: every worker loads the plugin

    response = httpx.post(f"{base_url.rstrip('/')}/_faults", json=faults, timeout=10)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


@hookimpl
def vq_add_commands(cli: click.Group) -> None:
    """Add ``vq services``."""
    cli.add_command(services_group)
