"""Job events: what the worker tells observers (metrics, logs, plugins) through
the ``vq_job_event`` hook."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pluggy

log = logging.getLogger("vq.job")


class EventEmitter:
    """Emits this worker's job events; an observer's error is logged, never raised."""

    def __init__(self, pm: pluggy.PluginManager, worker_id: str) -> None:
        self.worker_id = worker_id
        # Looked up once: a hook caller lives as long as its manager, and this runs
        # several times per job. Plugins registered later still join it.
        self._observers = pm.hook.vq_job_event

    def emit(self, job_id: uuid.UUID, event: str, details: dict[str, Any]) -> None:
        """Tell observers that ``event`` happened to ``job_id``; adds ``worker_id``."""
        details.setdefault("worker_id", self.worker_id)
        try:
            self._observers(job_id=job_id, event=event, details=details)
        except Exception:
            log.exception("a vq_job_event observer failed on %s of job %s", event, job_id)
