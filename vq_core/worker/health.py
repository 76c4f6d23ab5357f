"""Service health: probe every routed service, gate claims on the answer, record it.

An unhealthy service's job types stop being claimed (their jobs wait in the queue);
the record feeds the service_unhealthy alert and the admin page.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from vq_core.config import Settings
from vq_core.errors import ServiceError
from vq_core.store import Store
from vq_core.video_service import VideoService
from vq_core.worker.routing import Router

log = logging.getLogger("vq.worker")


class HealthChecks:
    """Asks each service of ``router`` for its health, within ``health_check_timeout``."""

    def __init__(
        self, store: Store, router: Router, settings: Settings, wake: Callable[[], None]
    ) -> None:
        self.store = store
        self.router = router
        self.settings = settings
        self._wake = wake

    async def check(self) -> None:
        """Probe every service; unhealthy ones stop being claimed, recovered ones at once are."""
        routes = self.router.routes()
        for name, service in self.router.services.items():
            types = sorted(t for t, s in routes.items() if s == name)
            healthy, detail = await self._probe(service)
            was_healthy = name not in self.router.unhealthy
            was_usable = self.router.usable(name)
            self.router.set_health(name, healthy, detail)
            if healthy != was_healthy:
                log.warning(
                    "service %s is now %s%s",
                    name,
                    "healthy" if healthy else "unhealthy",
                    f": {detail}" if detail else "",
                )
            # A passing check also closes an open circuit: its jobs may start now, not
            # at the next poll tick.
            if healthy and not was_usable:
                self._wake()
            await self.store.record_service_health(name, healthy, detail, types)

    async def _probe(self, service: VideoService) -> tuple[bool, str | None]:
        try:
            healthy = await asyncio.wait_for(service.health(), self.settings.health_check_timeout)
        except TimeoutError:
            return False, "health check timed out"
        except ServiceError as exc:
            return False, exc.message
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return bool(healthy), None if healthy else "health check answered unhealthy"
