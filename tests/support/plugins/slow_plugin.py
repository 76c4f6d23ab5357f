"""A test plugin: service ``slow`` sleeps VQ_TEST_SLOW_SECONDS, then completes."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from vq_core import hookimpl
from vq_core.config import Settings
from vq_core.models import ClaimedJob
from vq_core.video_service import ProgressCallback


class SlowService:
    name = "slow"
    job_types = ("slow",)

    async def render(self, job: ClaimedJob, progress: ProgressCallback) -> dict[str, Any]:
        await progress(1, "started")
        await asyncio.sleep(float(os.environ.get("VQ_TEST_SLOW_SECONDS", "0")))
        return {"pid": os.getpid()}

    async def health(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


@hookimpl
def vq_register_services(settings: Settings) -> list[SlowService]:
    return [SlowService()]
