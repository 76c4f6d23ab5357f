"""``vq import``: move the jobs of the queue's first version (its ``jobs`` table, in
the database vq uses) into vq, once (``vq_core/store/importing.py`` does the work).

Exit codes: 0 when every row is imported or was already; 1 when some rows were refused
(the rest are imported, the refused ones listed with their reasons, so a script never
drops the old table over rows it lost); 2 for a bad ``--table``.
"""

from __future__ import annotations

import click

from vq_core.cli.common import async_command, cli_actor, emit_json, json_option, with_runtime
from vq_core.store.importing import IMPORTED_STATUSES, ImportReport

#: Refused rows the human report lists (``--json`` lists all).
_SHOWN_REFUSALS = 20


@click.command("import")
@click.option(
    "--table",
    required=True,
    metavar="SCHEMA.TABLE",
    help="The first version's jobs table, e.g. public.jobs.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be imported; change nothing.")
@json_option
@async_command
async def import_jobs(table: str, dry_run: bool, as_json: bool) -> None:
    """Import the jobs of the first version's table: waiting and interrupted jobs
    become queued, finished ones keep their outcome. A second run imports nothing
    twice."""
    actor = cli_actor()
    report = await with_runtime(
        lambda rt: rt.store.import_first_version(table, actor, dry_run=dry_run)
    )
    if as_json:
        emit_json(report.to_dict())
    else:
        _print_report(report)
    if report.refused:
        # Exit (a RuntimeError), not SystemExit: it leaves the event loop as any error does.
        click.get_current_context().exit(1)


def _print_report(report: ImportReport) -> None:
    verb = "would import" if report.dry_run else "imported"
    note = " (dry run: nothing changed)" if report.dry_run else ""
    click.echo(f"{report.table}: {report.rows} rows{note}")
    click.echo(f"{'STATUS':<10} {verb.upper():>13} {'ALREADY THERE':>14}")
    for status in IMPORTED_STATUSES:
        click.echo(
            f"{status.value:<10} {report.imported[status.value]:>13} "
            f"{report.already[status.value]:>14}"
        )
    click.echo(f"{'total':<10} {report.imported.total():>13} {report.already.total():>14}")
    if not report.refused:
        return
    click.echo(f"refused: {len(report.refused)} rows (not imported)")
    for refusal in report.refused[:_SHOWN_REFUSALS]:
        click.echo(f"  id {refusal.id} (status {refusal.status!r}): {refusal.reason}")
    if len(report.refused) > _SHOWN_REFUSALS:
        rest = len(report.refused) - _SHOWN_REFUSALS
        click.echo(f"  ... and {rest} more (--json lists every one)")
