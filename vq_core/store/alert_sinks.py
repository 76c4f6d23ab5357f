"""Installation-wide alert sinks and the record of every delivery attempt (SQL in
``sql/queries/alert_sinks.sql``).

People read sinks as ``AlertSinkInfo``, which has no secret at all, only whether one is
set. Only ``deliverable_alert_sinks`` returns secrets, as ``StoredSink`` (whose ``repr``
leaves the secret out), for the process that delivers notifications.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from vq_core.db.queries import sql
from vq_core.errors import InvalidInput
from vq_core.models import Actor
from vq_core.sink_config import SinkSpec, check_name, public_config, target

SENT = "sent"
RETRIED = "retried"
FAILED = "failed"


@dataclass(frozen=True)
class AlertSinkInfo:
    """A stored sink as people see it: where it delivers, never its secret."""

    id: int
    name: str
    kind: str
    #: As stored (a URL's credentials included): shown through ``to_dict``/``target`` only.
    config: dict[str, Any] = field(repr=False)
    has_secret: bool = False
    created_at: datetime | None = None
    created_by: str = ""

    @property
    def target(self) -> str:
        """Where it delivers, in one line (URL credentials hidden)."""
        return target(self.kind, self.config)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for ``--json`` and the page: no secret, URL credentials hidden."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "target": self.target,
            "config": public_config(self.config),
            "has_secret": self.has_secret,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class StoredSink:
    """A stored sink with what delivering needs, its secret included (not in ``repr``)."""

    id: int
    name: str
    kind: str
    config: dict[str, Any]
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver a notification to a sink, and how it went.

    ``installation_wide`` tells a stored sink (``sink_id``, ``None`` once removed) from
    one a process's own configuration provides (the log sink).
    """

    id: int
    notification: uuid.UUID
    alert_key: str
    alert_state: str
    sink: str
    sink_id: int | None
    installation_wide: bool
    attempt: int
    outcome: str
    detail: str | None
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "id": self.id,
            "notification": str(self.notification),
            "alert_key": self.alert_key,
            "alert_state": self.alert_state,
            "sink": self.sink,
            "sink_id": self.sink_id,
            "installation_wide": self.installation_wide,
            "attempt": self.attempt,
            "outcome": self.outcome,
            "detail": self.detail,
            "at": self.at.isoformat(),
        }


class AlertSinkExists(InvalidInput):
    """A sink of that name is already stored."""


class AlertSinkStore:
    """The methods on ``vq.alert_sinks`` and ``vq.alert_deliveries``; part of ``Store``."""

    pool: asyncpg.Pool

    async def add_alert_sink(self, spec: SinkSpec, actor: Actor) -> AlertSinkInfo:
        """Store a checked sink (``vq_core.sink_config``) for every process to deliver to.

        :raises AlertSinkExists: a sink of that name exists (an ``InvalidInput``).
        """
        row = await self.pool.fetchrow(
            sql("add_alert_sink"), spec.name, spec.kind, spec.config, spec.secret, actor.name
        )
        if row is None:
            raise AlertSinkExists(f"name: an alert sink named {spec.name!r} already exists")
        return AlertSinkInfo(**dict(row))

    async def list_alert_sinks(self) -> list[AlertSinkInfo]:
        """Every stored sink by name, without secrets."""
        return [AlertSinkInfo(**dict(r)) for r in await self.pool.fetch(sql("list_alert_sinks"))]

    async def deliverable_alert_sinks(self) -> list[StoredSink]:
        """Every stored sink with its secret: only for building the sinks that deliver."""
        rows = await self.pool.fetch(sql("deliverable_alert_sinks"))
        return [StoredSink(**dict(r)) for r in rows]

    async def remove_alert_sink(self, name: str) -> bool:
        """Delete a sink by name; False if there was none. Its deliveries stay, by name."""
        row = await self.pool.fetchrow(sql("remove_alert_sink"), check_name(name))
        return row is not None

    async def record_alert_delivery(
        self,
        notification: uuid.UUID,
        alert_key: str,
        alert_state: str,
        sink: str,
        sink_id: int | None,
        installation_wide: bool,
        attempt: int,
        outcome: str,
        detail: str | None = None,
    ) -> None:
        """Record one delivery attempt: ``sent``, ``retried`` (another attempt follows) or
        ``failed`` (the last one)."""
        await self.pool.execute(
            sql("record_alert_delivery"),
            notification,
            alert_key,
            alert_state,
            sink,
            sink_id,
            installation_wide,
            attempt,
            outcome,
            detail[:1000] if detail else None,
        )

    async def list_alert_deliveries(self, limit: int = 200) -> list[Delivery]:
        """The newest delivery attempts, newest first."""
        rows = await self.pool.fetch(sql("list_alert_deliveries"), max(1, min(limit, 5000)))
        return [Delivery(**dict(r)) for r in rows]

    async def prune_alert_deliveries(self, older_than_s: float) -> None:
        """Forget delivery attempts older than ``older_than_s`` seconds."""
        await self.pool.execute(sql("prune_alert_deliveries"), older_than_s)
