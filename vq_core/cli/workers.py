"""``vq workers``: every known worker, live, stale or stopping, with its jobs in flight
and its last heartbeat.

A stale worker (no heartbeat within its lease) is most likely dead: the jobs in flight
it last reported are not shown as running, since its leases run out and those jobs go
back to the queue.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from vq_core.cli.common import async_command, emit_json, json_option, with_runtime
from vq_core.models import WorkerInfo


def worker_state(worker: WorkerInfo) -> str:
    """``stale`` (heartbeat older than its lease), ``stopping`` or ``live``."""
    if worker.stale:
        # A stale worker that last said "stopping" has stopped (or died) since.
        return "stale"
    return "stopping" if worker.status == "stopping" else "live"


def _age(since: datetime, now: datetime) -> str:
    seconds = max(0.0, (now - since).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h ago"
    return f"{seconds / 86400:.0f}d ago"


def _row(worker: WorkerInfo, now: datetime) -> dict[str, Any]:
    out = worker.to_dict()
    state = worker_state(worker)
    # What the worker last said of itself; "state" is what holds now.
    out["reported_status"] = out.pop("status")
    out["state"] = state
    out["jobs_in_flight"] = None if state == "stale" else worker.jobs_in_flight
    out["heartbeat_age_s"] = round(max(0.0, (now - worker.last_heartbeat).total_seconds()), 3)
    return out


@click.command()
@json_option
@async_command
async def workers(as_json: bool) -> None:
    """Known workers: state (live, stale, stopping), jobs in flight, last heartbeat,
    jobs completed and failed, failures in a row."""
    found = await with_runtime(lambda rt: rt.store.list_workers())
    now = datetime.now(UTC)
    if as_json:
        emit_json({"workers": [_row(w, now) for w in found]})
        return
    if not found:
        click.echo("no workers")
        return
    click.echo(
        f"{'WORKER':<32} {'STATE':<8} {'JOBS':>7} {'HEARTBEAT':>10} "
        f"{'DONE':>7} {'FAILED':>7} {'IN A ROW':>8}  HOST"
    )
    for w in found:
        state = worker_state(w)
        in_flight = "-" if state == "stale" else f"{w.jobs_in_flight}/{w.concurrency}"
        click.echo(
            f"{w.id:<32} {state:<8} {in_flight:>7} {_age(w.last_heartbeat, now):>10} "
            f"{w.jobs_completed:>7} {w.jobs_failed:>7} {w.consecutive_failures:>8}  "
            f"{w.hostname} pid {w.pid}"
        )
    if any(w.stale for w in found):
        click.echo(
            "stale: no heartbeat within its lease, most likely dead; its jobs go back "
            "to the queue when their leases run out (jobs in flight not shown)"
        )
