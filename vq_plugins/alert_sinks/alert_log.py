"""The ``log`` alert sink: every alert notification becomes a log line. Always on."""

from __future__ import annotations

import logging

from vq_core import hookimpl
from vq_core.alerts.engine import alert_text
from vq_core.alerts.model import Alert, AlertSink
from vq_core.config import Settings

log = logging.getLogger("vq.alerts.sink")


class LogSink:
    """Logs firing alerts as warnings and resolutions as info, with the alert's fields
    as ``extra`` so JSON logs (``--log-json``) carry them."""

    name = "log"

    async def send(self, alert: Alert) -> None:
        """Write one log line."""
        level = logging.WARNING if alert.state == "firing" else logging.INFO
        log.log(
            level,
            "%s",
            alert_text(alert),
            extra={
                "alert_key": alert.key,
                "alert_rule": alert.rule,
                "alert_state": alert.state,
                "alert_details": alert.details,
                "alert_send_count": alert.send_count,
            },
        )


@hookimpl
def vq_register_alert_sinks(settings: Settings) -> list[AlertSink]:
    """Provide the log sink."""
    return [LogSink()]
