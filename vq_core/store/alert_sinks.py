"""Installation-wide alert sinks and the record of every delivery attempt (SQL in
``sql/queries/alert_sinks.sql``).

People read sinks as ``AlertSinkInfo``, which has no secret at all, only whether one is
set. Only ``deliverable_alert_sinks`` returns secrets, as ``StoredSink`` (whose ``repr``
leaves the secret out), for the process that delivers notifications.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import asyncpg

from vq_core.db.queries import sql
from vq_core.errors import InvalidInput
from vq_core.models import Actor
from vq_core.store.records import export

SENT = "sent"
RETRIED = "retried"
FAILED = "failed"


if TYPE_CHECKING:
    from vq_core.sink_config import SinkSpec
    from vq_core.store.records.alert_sinks import (
        AlertSinkInfo as AlertSinkInfo,
    )
    from vq_core.store.records.alert_sinks import (
        Delivery as Delivery,
    )
    from vq_core.store.records.alert_sinks import (
        StoredSink as StoredSink,
    )


def __getattr__(name: str) -> Any:
    # The records are made on first use (vq_core.store.records says why).
    return export("alert_sinks", __name__, name)


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
        from vq_core.store.records.alert_sinks import AlertSinkInfo

        return AlertSinkInfo(**dict(row))

    async def list_alert_sinks(self) -> list[AlertSinkInfo]:
        """Every stored sink by name, without secrets."""
        from vq_core.store.records.alert_sinks import AlertSinkInfo

        return [AlertSinkInfo(**dict(r)) for r in await self.pool.fetch(sql("list_alert_sinks"))]

    async def deliverable_alert_sinks(self) -> list[StoredSink]:
        """Every stored sink with its secret: only for building the sinks that deliver."""
        rows = await self.pool.fetch(sql("deliverable_alert_sinks"))
        from vq_core.store.records.alert_sinks import StoredSink

        return [StoredSink(**dict(r)) for r in rows]

    async def remove_alert_sink(self, name: str) -> bool:
        """Delete a sink by name; False if there was none. Its deliveries stay, by name."""
        from vq_core.sink_config import check_name

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
        from vq_core.store.records.alert_sinks import Delivery

        return [Delivery(**dict(r)) for r in rows]

    async def prune_alert_deliveries(self, older_than_s: float) -> None:
        """Forget delivery attempts older than ``older_than_s`` seconds."""
        await self.pool.execute(sql("prune_alert_deliveries"), older_than_s)
