"""The records of ``vq_core.store.bulk`` (bulk actions), which exports them;
made on first use (``vq_core.store.records`` says why)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BulkResult"]


@dataclass(frozen=True)
class BulkResult:
    """What a bulk action did: how many jobs it acted on, and for a cancel how many
    of them were running (their workers were asked to stop them)."""

    action: str
    acted: int
    running: int = 0
