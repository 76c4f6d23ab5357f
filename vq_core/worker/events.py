"""Job events: what the worker tells observers (metrics, logs, plugins) through
the ``vq_job_event`` hook."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import pluggy

log = logging.getLogger("vq.job")

_Observer = tuple[Callable[..., object], tuple[str, ...], str]


class EventEmitter:
    """Emits this worker's job events; an observer's error is logged, never raised.

    The hook fires twice per job, and pluggy's call machinery (argument checks, the
    wrapper protocol, result collection) costs about as much as both built-in observers
    together. So while every implementation is a plain one, as the built-in observers
    are, each is called directly, in pluggy's order (last registered first), with the
    arguments it names; one that raises does not keep the others from the event. A
    hook wrapper sends every event through pluggy. Plugins registered later still
    join: the implementations are read again whenever the hook's list changes.
    """

    def __init__(self, pm: pluggy.PluginManager, worker_id: str) -> None:
        self.worker_id = worker_id
        # Looked up once: a hook caller lives as long as its manager.
        self._hook = pm.hook.vq_job_event
        self._seen: list[pluggy.HookImpl] = []
        self._direct: list[_Observer] | None = []

    def emit(self, job_id: uuid.UUID, event: str, details: dict[str, Any]) -> None:
        """Tell observers that ``event`` happened to ``job_id``; adds ``worker_id``."""
        details.setdefault("worker_id", self.worker_id)
        impls = self._hook.get_hookimpls()
        if impls != self._seen:
            self._seen = impls
            self._direct = _direct_calls(impls)
        if self._direct is None:
            try:
                self._hook(job_id=job_id, event=event, details=details)
            except Exception:
                log.exception("a vq_job_event observer failed on %s of job %s", event, job_id)
            return
        given = {"job_id": job_id, "event": event, "details": details}
        for function, argnames, name in self._direct:
            try:
                function(*[given[a] for a in argnames])
            except Exception:
                log.exception(
                    "vq_job_event observer %s failed on %s of job %s", name, event, job_id
                )


def _direct_calls(impls: list[pluggy.HookImpl]) -> list[_Observer] | None:
    """The implementations to call, in pluggy's order; None if one is a wrapper."""
    if any(impl.hookwrapper or impl.wrapper for impl in impls):
        return None
    # pluggy sorts tryfirst/trylast into the list; it calls from the end.
    return [(impl.function, tuple(impl.argnames), impl.plugin_name) for impl in reversed(impls)]
