"""``vq alerts``: the installation-wide alert sinks (list, add, remove) and a test send.

A sink added here is stored in ``vq.alert_sinks`` and reaches every notification,
whichever process evaluates the rules. Secrets (``--secret``, ``--password``) are stored
but never printed: lists say only whether a sink has one. The test send goes through the
plugin manager like the worker's deliveries (the core does not import the sink plugins).
"""

from __future__ import annotations

import click

from vq_core.alerts.engine import AlertEngine, DeliveryOutcome, collect_sinks, sink_builder
from vq_core.cli.common import (
    UsageProblem,
    async_command,
    cli_actor,
    emit_json,
    json_option,
    with_runtime,
)
from vq_core.runtime import Runtime
from vq_core.sink_config import SINK_KINDS, WEBHOOK, SinkSpec, email_spec, webhook_spec
from vq_core.store.alert_sinks import SENT, AlertSinkInfo


@click.group()
def alerts() -> None:
    """Alert sinks for the whole installation, and a test notification."""


@alerts.group()
def sinks() -> None:
    """List, add and remove the installation-wide alert sinks."""


@sinks.command("list")
@json_option
@async_command
async def sinks_list(as_json: bool) -> None:
    """List the stored sinks (secrets are never shown, only whether one is set)."""
    rows = await with_runtime(lambda rt: rt.store.list_alert_sinks())
    if as_json:
        emit_json({"sinks": [s.to_dict() for s in rows]})
        return
    if not rows:
        click.echo("no installation-wide alert sink: notifications reach only the log")
        return
    click.echo(f"{'NAME':<20} {'KIND':<8} {'SECRET':<7} {'ADDED BY':<16} TARGET")
    for s in rows:
        secret = "yes" if s.has_secret else "no"
        click.echo(f"{s.name:<20} {s.kind:<8} {secret:<7} {s.created_by:<16} {s.target}")


def _spec(
    name: str,
    kind: str,
    url: str | None,
    secret: str | None,
    timeout: float | None,
    to: tuple[str, ...],
    smtp_host: str | None,
    smtp_port: int | None,
    sender: str | None,
    username: str | None,
    password: str | None,
    starttls: bool,
    use_ssl: bool,
) -> SinkSpec:
    """The checked sink from the options; options of the other kind are refused."""
    if kind == WEBHOOK:
        stray = [
            flag
            for flag, value in (
                ("--to", to),
                ("--smtp-host", smtp_host),
                ("--smtp-port", smtp_port),
                ("--from", sender),
                ("--username", username),
                ("--password", password),
                ("--starttls", starttls),
                ("--ssl", use_ssl),
            )
            if value
        ]
        if stray:
            raise UsageProblem(f"{', '.join(stray)}: not options of a webhook sink")
        if not url:
            raise UsageProblem("--url: a webhook sink needs a URL")
        return webhook_spec(name, url, secret, timeout)
    if url or secret:
        raise UsageProblem(
            "--url/--secret: not options of an e-mail sink (its secret is --password)"
        )
    if not to:
        raise UsageProblem("--to: an e-mail sink needs at least one recipient")
    if not smtp_host:
        raise UsageProblem("--smtp-host: an e-mail sink needs an SMTP server")
    if not sender:
        raise UsageProblem("--from: an e-mail sink needs a sender address")
    return email_spec(
        name,
        to=to,
        host=smtp_host,
        sender=sender,
        port=smtp_port,
        username=username,
        password=password,
        starttls=starttls,
        use_ssl=use_ssl,
        timeout=timeout,
    )


@sinks.command("add")
@click.argument("name")
@click.option("--kind", type=click.Choice(SINK_KINDS), required=True)
@click.option("--url", help="webhook: where to POST (http or https).")
@click.option("--secret", help="webhook: signs each POST (X-VQ-Signature); never printed.")
@click.option("--to", multiple=True, metavar="ADDR", help="email: a recipient (repeatable).")
@click.option("--smtp-host", help="email: the SMTP server.")
@click.option("--smtp-port", type=int, help="email: default 25 (465 with --ssl).")
@click.option("--from", "sender", metavar="ADDR", help="email: the sender address.")
@click.option("--username", help="email: SMTP login.")
@click.option("--password", help="email: SMTP password; never printed.")
@click.option("--starttls", is_flag=True, help="email: upgrade the connection to TLS.")
@click.option("--ssl", "use_ssl", is_flag=True, help="email: speak TLS from the start.")
@click.option("--timeout", type=float, help="Seconds per delivery (webhook 5, email 10).")
@json_option
@async_command
async def sinks_add(
    name: str,
    kind: str,
    url: str | None,
    secret: str | None,
    to: tuple[str, ...],
    smtp_host: str | None,
    smtp_port: int | None,
    sender: str | None,
    username: str | None,
    password: str | None,
    starttls: bool,
    use_ssl: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Store a sink every process delivers alerts to.

    \b
    vq alerts sinks add ops-hook --kind webhook --url URL [--secret S]
    vq alerts sinks add oncall --kind email --to ADDR --smtp-host HOST --from ADDR
    """
    spec = _spec(
        name,
        kind,
        url,
        secret,
        timeout,
        to,
        smtp_host,
        smtp_port,
        sender,
        username,
        password,
        starttls,
        use_ssl,
    )
    actor = cli_actor()
    info: AlertSinkInfo = await with_runtime(lambda rt: rt.store.add_alert_sink(spec, actor))
    if as_json:
        emit_json(info.to_dict())
    else:
        signed = " (with a secret)" if info.has_secret else ""
        click.echo(f"added {info.kind} sink {info.name}{signed}: {info.target}")


@sinks.command("remove")
@click.argument("name")
@json_option
@async_command
async def sinks_remove(name: str, as_json: bool) -> None:
    """Remove a stored sink (its past deliveries stay listed by name)."""
    removed = await with_runtime(lambda rt: rt.store.remove_alert_sink(name))
    if not removed:
        raise UsageProblem(f"no alert sink named {name!r}")
    if as_json:
        emit_json({"removed": name})
    else:
        click.echo(f"removed alert sink {name}")


@alerts.command("test")
@json_option
@async_command
async def alerts_test(as_json: bool) -> None:
    """Send a test notification to every sink and print each one's outcome.

    Every installation-wide sink, plus the sinks this process's own configuration
    names (the log sink always). Exits 1 when a sink failed.
    """
    actor = cli_actor()

    async def send(rt: Runtime) -> list[DeliveryOutcome]:
        engine = AlertEngine(
            rt.store,
            rt.settings,
            collect_sinks(rt.pm, rt.settings),
            sink_builder(rt.pm, rt.settings),
        )
        return await engine.send_test(f"{actor.name} (cli)")

    outcomes = await with_runtime(send)
    failed = [o for o in outcomes if o.outcome != SENT]
    if as_json:
        emit_json({"deliveries": [o.to_dict() for o in outcomes]})
    else:
        for o in outcomes:
            scope = "installation" if o.installation_wide else "this process"
            tries = f" after {o.attempts} attempts" if o.attempts > 1 else ""
            detail = f": {o.detail}" if o.detail else ""
            click.echo(f"{o.sink:<20} {scope:<13} {o.outcome}{tries}{detail}")
        if not any(o.installation_wide for o in outcomes):
            click.echo("no installation-wide sink: add one with `vq alerts sinks add`")
    if failed:
        raise SystemExit(1)


__all__ = ["alerts"]
