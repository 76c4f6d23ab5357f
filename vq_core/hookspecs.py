"""Every hook a vq plugin may implement: signatures and documentation only.

Plugins mark implementations with ``vq_core.hookimpl``. A hook may gain arguments
in a later version but never loses one; an implementation may accept fewer.
docs/plugins.md documents each hook, and a test fails if one is missing there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import uuid

    import click

    from vq_core.alerts.model import AlertSink
    from vq_core.config import Settings
    from vq_core.models import ClaimedJob, ErrorCategory
    from vq_core.store import Store
    from vq_core.video_service import VideoService
    from vq_core.web_server import WebServer

hookspec = pluggy.HookspecMarker("vq")


@hookspec
def vq_register_services(settings: Settings) -> list[VideoService]:
    """Return the video services this plugin provides (may be empty).

    :param settings: the running configuration; read your own options with
        ``settings.plugin_settings("your-name")``.
    :return: service objects implementing ``vq_core.video_service.VideoService``.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def vq_categorise_error(
    exc: BaseException, job: ClaimedJob, category: ErrorCategory
) -> ErrorCategory | None:
    """Refine the category of a failed attempt; the first non-``None`` answer wins.

    :param exc: the exception the service raised (or the timeout).
    :param job: the job that failed.
    :param category: vq's own categorisation, for plugins that only adjust some cases.
    :return: the category to record, or ``None`` to keep looking.
    """


@hookspec(firstresult=True)
def vq_retry_delay(
    exc: BaseException, job: ClaimedJob, category: ErrorCategory, attempt: int, default: float
) -> float | None:
    """Choose how many seconds to wait before the next attempt; first answer wins.

    :param exc: the exception of the failed attempt.
    :param job: the job that failed.
    :param category: its (refined) error category.
    :param attempt: the attempt that failed, starting at 1.
    :param default: vq's own choice (exponential backoff with jitter, Retry-After honoured).
    :return: seconds, or ``None`` to accept the default.
    """


@hookspec
def vq_job_event(job_id: uuid.UUID, event: str, details: dict[str, Any]) -> None:
    """Observe a job's life as a worker sees it: ``claimed``, ``progress``,
    ``completed``, ``retry_scheduled``, ``failed``, ``cancelled``, ``released``.

    Called after the change is committed. Must be quick and must not raise: it runs
    on the worker's event loop (a slow observer slows every job).

    :param job_id: the job.
    :param event: what happened.
    :param details: event data (error record, progress, result, worker id).
    """


@hookspec
def vq_register_alert_sinks(settings: Settings) -> list[AlertSink]:
    """Return the alert sinks this plugin provides (log, webhook, email...).

    :param settings: the running configuration.
    :return: objects implementing ``vq_core.alerts.model.AlertSink``.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def vq_alert_sink_from_config(
    kind: str, name: str, config: dict[str, Any], secret: str | None, settings: Settings
) -> AlertSink | None:
    """Build an installation-wide sink stored in ``vq.alert_sinks``; first answer wins.

    Called by the process that delivers a notification, for each stored sink, so a sink
    added with ``vq alerts sinks add`` (or from the admin page) reaches every notification
    whichever process evaluates the rules.

    :param kind: the stored kind (``webhook``, ``email``); answer ``None`` for others.
    :param name: the sink's stored name; the sink's ``name`` should be it.
    :param config: the stored options (checked by ``vq_core.sink_config`` when added).
    :param secret: the stored secret (signing key, SMTP password) or ``None``; never log it.
    :param settings: the running configuration.
    :return: an object implementing ``vq_core.alerts.model.AlertSink``, or ``None``.
    :raises ConfigError: the stored options cannot make a sink.
    """


@hookspec
def vq_add_commands(cli: click.Group) -> None:
    """Add click commands to the ``vq`` command line.

    :param cli: the top-level ``vq`` group; call ``cli.add_command(...)``.
    """


@hookspec(firstresult=True)
def vq_web_server(settings: Settings, store: Store) -> WebServer | None:
    """Provide the web server ``vq run`` starts beside the worker (the admin page and API).

    :param settings: the running configuration.
    :param store: the store the pages and routes must use.
    :return: an object implementing ``vq_core.web_server.WebServer``, or ``None``.
    """
    raise NotImplementedError
