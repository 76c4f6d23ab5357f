"""The alert engine: evaluates the rules on a schedule and notifies the sinks.

Every worker runs ``AlertEngine.tick`` from its scheduler, but only the one that
takes the transaction-scoped advisory lock evaluates; the others skip that tick.
Alert state lives in ``vq.alerts``, so whichever process evaluates next knows what
was already sent: a notification goes out when an alert fires, again only once
the cool-down has passed while it still fires, and once when it resolves.

The state is committed before the sinks are called. A crash between the two
loses that notification (the next repeat or the resolution still comes), but a
slow sink never holds the lock or a database connection, and ten workers never
send the same alert ten times.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import pluggy

from vq_core.alerts.model import Alert, AlertSink
from vq_core.alerts.rules import RULES, Finding, Rule
from vq_core.config import AlertSettings, Settings
from vq_core.store import Store
from vq_core.store.alerts import FIRING, RESOLVED, AlertRecord, QueueSnapshot

log = logging.getLogger("vq.alerts")


def collect_sinks(pm: pluggy.PluginManager, settings: Settings) -> list[AlertSink]:
    """Every sink the plugins provide (a plugin that is not configured provides none)."""
    sinks: list[AlertSink] = []
    for provided in pm.hook.vq_register_alert_sinks(settings=settings):
        sinks.extend(provided or [])
    return sinks


def evaluate(
    snapshot: QueueSnapshot, cfg: AlertSettings, rules: Mapping[str, Rule] = RULES
) -> tuple[list[Finding], set[str]]:
    """Run every rule; returns the findings and the names of rules that crashed.

    A crashed rule is logged and its alerts are left as they are (neither fired
    nor resolved) rather than taking the other rules down with it.
    """
    findings: list[Finding] = []
    broken: set[str] = set()
    for name, rule in rules.items():
        try:
            findings.extend(rule(snapshot, cfg))
        except Exception:
            log.exception("alert rule %s failed; its alerts keep their state", name)
            broken.add(name)
    return findings, broken


def decide(
    current: Mapping[str, AlertRecord],
    findings: Iterable[Finding],
    now: datetime,
    cooldown_s: float,
    skip_rules: Iterable[str] = (),
) -> tuple[list[AlertRecord], list[AlertRecord]]:
    """New states to store, and those of them to notify now.

    Fires a new (or previously resolved) condition, repeats a firing one whose
    last notification is at least ``cooldown_s`` old, and resolves a firing
    alert that was not found, unless its rule is in ``skip_rules``.
    """
    writes: list[AlertRecord] = []
    send: list[AlertRecord] = []
    found: set[str] = set()
    for f in findings:
        if f.key in found:
            continue
        found.add(f.key)
        record, due = _still_firing(current.get(f.key), f, now, cooldown_s)
        writes.append(record)
        if due:
            send.append(record)
    skipped = set(skip_rules)
    for prev in current.values():
        if prev.firing and prev.key not in found and prev.rule not in skipped:
            record = replace(
                prev,
                state=RESOLVED,
                resolved_at=now,
                last_sent_at=now,
                send_count=prev.send_count + 1,
            )
            writes.append(record)
            send.append(record)
    return writes, send


def _still_firing(
    prev: AlertRecord | None, f: Finding, now: datetime, cooldown_s: float
) -> tuple[AlertRecord, bool]:
    """The new state of a found condition, and whether to notify."""
    if prev is None or not prev.firing:
        fresh = AlertRecord(f.key, f.rule, FIRING, f.summary, f.details, now, now, now, None, 1)
        return fresh, True
    due = prev.last_sent_at is None or (now - prev.last_sent_at).total_seconds() >= cooldown_s
    record = replace(
        prev,
        rule=f.rule,
        summary=f.summary,
        details=f.details,
        last_seen=now,
        last_sent_at=now if due else prev.last_sent_at,
        send_count=prev.send_count + 1 if due else prev.send_count,
    )
    return record, due


def notification(record: AlertRecord) -> Alert:
    """What the sinks receive for an alert's stored state."""
    return Alert(
        key=record.key,
        rule=record.rule,
        state=record.state,
        summary=record.summary,
        first_seen=record.first_seen,
        last_seen=record.last_seen,
        details=dict(record.details),
        resolved_at=record.resolved_at,
        send_count=record.send_count,
    )


class AlertEngine:
    """Evaluates the alert rules and delivers notifications to the sinks."""

    def __init__(self, store: Store, settings: Settings, sinks: Sequence[AlertSink]) -> None:
        self.store = store
        self.settings = settings
        self.sinks = list(sinks)

    async def tick(self) -> list[Alert]:
        """Evaluate once (if no other process is) and notify; returns what was sent."""
        cfg = self.settings.alerts
        if not cfg.enabled:
            return []
        async with self.store.alert_transaction() as tx:
            now = await tx.try_lock()
            if now is None:
                return []  # another process is evaluating right now
            snapshot = await tx.read_snapshot(now, cfg.failure_window_s)
            findings, broken = evaluate(snapshot, cfg)
            current = await tx.alerts_for_update([f.key for f in findings])
            writes, send = decide(current, findings, now, cfg.cooldown, broken)
            await tx.write_alerts(writes)
            await tx.prune_resolved(cfg.keep_resolved_days * 86400)
        alerts = [notification(r) for r in send]
        await self.deliver(alerts)
        return alerts

    async def deliver(self, alerts: Sequence[Alert]) -> None:
        """Send each alert to every sink at once; failures are retried, then logged."""
        if alerts and self.sinks:
            await asyncio.gather(*(self._send(s, a) for s in self.sinks for a in alerts))

    async def _send(self, sink: AlertSink, alert: Alert) -> bool:
        cfg = self.settings.alerts
        name = getattr(sink, "name", type(sink).__name__)
        for attempt in range(1, cfg.sink_attempts + 1):
            try:
                await asyncio.wait_for(sink.send(alert), cfg.sink_timeout)
                return True
            except Exception as exc:
                reason = "timed out" if isinstance(exc, TimeoutError) else f"{exc!r}"
                if attempt == cfg.sink_attempts:
                    log.error(
                        "alert sink %s: gave up on %s %s after %d attempts: %s",
                        name,
                        alert.state,
                        alert.key,
                        attempt,
                        reason,
                    )
                    return False
                log.warning(
                    "alert sink %s: attempt %d for %s failed (%s); retrying",
                    name,
                    attempt,
                    alert.key,
                    reason,
                )
                # Back off so a sink that is briefly down gets a chance to recover.
                await asyncio.sleep(cfg.sink_retry_delay * 2 ** (attempt - 1))
        return False


# -- what sinks send --------------------------------------------------------------------


def alert_text(alert: Alert) -> str:
    """One line for chat (Slack's ``text``), an e-mail subject, or a log line."""
    if alert.state == RESOLVED:
        lasted = ""
        if alert.resolved_at is not None:
            lasted = f" after {_duration((alert.resolved_at - alert.first_seen).total_seconds())}"
        return f"[vq] RESOLVED {alert.key}{lasted} (was: {alert.summary})"
    repeat = ""
    if alert.send_count > 1:
        since = _duration((alert.last_seen - alert.first_seen).total_seconds())
        repeat = f" (still firing, for {since})"
    return f"[vq] FIRING {alert.key}: {alert.summary}{repeat}"


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The alert as JSON: every field, plus ``text`` so Slack webhooks accept it as is."""
    return {
        "key": alert.key,
        "rule": alert.rule,
        "state": alert.state,
        "summary": alert.summary,
        "details": alert.details,
        "first_seen": alert.first_seen.isoformat(),
        "last_seen": alert.last_seen.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "send_count": alert.send_count,
        "repeat": alert.state == FIRING and alert.send_count > 1,
        "text": alert_text(alert),
    }


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
