"""The records of ``vq_core.store.importing`` (the first version's import), which exports them;
made on first use (``vq_core.store.records`` says why)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from vq_core.models import JobStatus

#: The statuses an import can produce, in the order reports list them.
IMPORTED_STATUSES = (JobStatus.QUEUED, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)

__all__ = ["IMPORTED_STATUSES", "ImportRefusal", "ImportReport", "ImportedJob"]


@dataclass(frozen=True)
class ImportRefusal:
    """A row that was not imported, and why."""

    id: str | None
    status: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"id": self.id, "status": self.status, "reason": self.reason}


@dataclass
class ImportReport:
    """What ``vq import`` did (or, on a dry run, would do), counted by the status each
    row has in vq."""

    table: str
    dry_run: bool
    rows: int = 0
    imported: Counter[str] = field(default_factory=Counter)
    already: Counter[str] = field(default_factory=Counter)
    refused: list[ImportRefusal] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view, as ``vq import --json`` prints it."""
        return {
            "table": self.table,
            "dry_run": self.dry_run,
            "rows": self.rows,
            "imported": {s.value: self.imported[s.value] for s in IMPORTED_STATUSES},
            "already_imported": {s.value: self.already[s.value] for s in IMPORTED_STATUSES},
            "refused": [r.to_dict() for r in self.refused],
        }


@dataclass(frozen=True)
class ImportedJob:
    """A first-version row as ``import_jobs`` inserts it: its key, vq status and values."""

    key: str
    status: JobStatus
    values: dict[str, Any]
