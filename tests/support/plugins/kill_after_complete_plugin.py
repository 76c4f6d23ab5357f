"""A test plugin: the worker SIGKILLs itself as soon as it hears a job completed (the
``vq_job_event`` hook runs after the completion is committed), when
VQ_TEST_KILL_AFTER_COMPLETE is set. Nothing after the commit runs: no callback from
this process, no shutdown."""

from __future__ import annotations

import os
import signal
import uuid
from typing import Any

from vq_core import hookimpl


@hookimpl
def vq_job_event(job_id: uuid.UUID, event: str, details: dict[str, Any]) -> None:
    if event == "completed" and os.environ.get("VQ_TEST_KILL_AFTER_COMPLETE"):
        os.kill(os.getpid(), signal.SIGKILL)
