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

Sinks come from two places. A process's own configuration provides some through the
``vq_register_alert_sinks`` hook (the log sink always). The installation-wide sinks in
``vq.alert_sinks`` (``vq alerts sinks add``, the admin page) are read at each delivery
and built by the plugins (``vq_alert_sink_from_config``), so whichever process holds the
rule lock delivers to them, whatever its own configuration names. Every attempt to
every sink is recorded in ``vq.alert_deliveries`` (sent, retried, failed).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pluggy

from vq_core import db
from vq_core.alerts.model import Alert, AlertSink, SinkError
from vq_core.alerts.rules import RULES, Finding, Rule
from vq_core.config import AlertSettings, ConfigError, Settings
from vq_core.redact import redact_urls
from vq_core.store import Store
from vq_core.store.alert_sinks import FAILED, RETRIED, SENT, StoredSink
from vq_core.store.alerts import FIRING, RESOLVED, AlertRecord, QueueSnapshot

log = logging.getLogger("vq.alerts")
_DB_ERRORS = db.DB_ERRORS
#: Builds the sink of a stored ``vq.alert_sinks`` row (``sink_builder`` asks the plugins).
SinkBuilder = Callable[[StoredSink], AlertSink]
TEST_KEY = "test"


def collect_sinks(pm: pluggy.PluginManager, settings: Settings) -> list[AlertSink]:
    """Every sink the plugins provide (a plugin that is not configured provides none)."""
    sinks: list[AlertSink] = []
    for provided in pm.hook.vq_register_alert_sinks(settings=settings):
        sinks.extend(provided or [])
    return sinks


def sink_builder(pm: pluggy.PluginManager, settings: Settings) -> SinkBuilder:
    """Turn stored sinks into sinks through the plugins' ``vq_alert_sink_from_config``.

    The builder raises ``ConfigError`` when no plugin of this process builds the kind
    (its plugin is disabled here) or the stored options are refused.
    """

    def build(stored: StoredSink) -> AlertSink:
        sink: AlertSink | None = pm.hook.vq_alert_sink_from_config(
            kind=stored.kind,
            name=stored.name,
            config=dict(stored.config),
            secret=stored.secret,
            settings=settings,
        )
        if sink is None:
            raise ConfigError(f"no plugin of this process delivers {stored.kind!r} sinks")
        return sink

    return build


@dataclass(frozen=True)
class Target:
    """A sink to deliver to: a process's own (``sink_id`` None) or a stored one. ``sink``
    is ``None`` when the stored one could not be built, and ``problem`` says why."""

    name: str
    sink: AlertSink | None
    sink_id: int | None = None
    problem: str | None = None

    @property
    def installation_wide(self) -> bool:
        """Stored in ``vq.alert_sinks`` rather than named by this process's configuration."""
        return self.sink_id is not None


@dataclass(frozen=True)
class DeliveryOutcome:
    """How one notification went to one sink, after every attempt."""

    alert_key: str
    sink: str
    installation_wide: bool
    outcome: str  # "sent" or "failed"
    attempts: int
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``vq alerts test --json``)."""
        return {
            "alert_key": self.alert_key,
            "sink": self.sink,
            "installation_wide": self.installation_wide,
            "outcome": self.outcome,
            "attempts": self.attempts,
            "detail": self.detail,
        }


def make_test_alert(actor: str, now: datetime | None = None) -> Alert:
    """The notification ``vq alerts test`` and the page's Test button send."""
    at = now or datetime.now(UTC)
    return Alert(
        key=TEST_KEY,
        rule="test",
        state=FIRING,
        summary=f"test notification sent by {actor}: alerts from vq reach this sink",
        first_seen=at,
        last_seen=at,
        details={"test": True, "sent_by": actor},
    )


def _reason(exc: BaseException, timeout: float) -> str:
    """Why an attempt failed, fit for a log line and the page (URL credentials hidden)."""
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g}s"
    if isinstance(exc, SinkError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return redact_urls(text)[:500]


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

    def __init__(
        self,
        store: Store,
        settings: Settings,
        sinks: Sequence[AlertSink],
        build_sink: SinkBuilder | None = None,
    ) -> None:
        """:param sinks: this process's own sinks (``collect_sinks``).
        :param build_sink: builds the installation-wide sinks of ``vq.alert_sinks``
            (``sink_builder``); without it only ``sinks`` are delivered to."""
        self.store = store
        self.settings = settings
        self.sinks = list(sinks)
        self.build_sink = build_sink

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
        if self.build_sink is not None:
            try:
                await self.store.prune_alert_deliveries(cfg.keep_resolved_days * 86400)
            except _DB_ERRORS as exc:
                log.warning("could not prune old alert deliveries: %s", exc)
        return alerts

    async def targets(self) -> list[Target]:
        """This process's sinks, then every installation-wide one (read now, so a sink
        added or removed a moment ago is already in or out)."""
        targets = [Target(getattr(s, "name", type(s).__name__), s) for s in self.sinks]
        if self.build_sink is None:
            return targets
        try:
            stored = await self.store.deliverable_alert_sinks()
        except _DB_ERRORS as exc:
            # This process's own sinks still get the notification.
            log.error("cannot read the installation's alert sinks: %s", exc)
            return targets
        for row in stored:
            try:
                targets.append(Target(row.name, self.build_sink(row), row.id))
            except Exception as exc:  # a plugin's refusal must not stop the other sinks
                problem = _reason(exc, 0)
                log.error(
                    "alert sink %s (%s): cannot be built here: %s", row.name, row.kind, problem
                )
                targets.append(Target(row.name, None, row.id, problem))
        return targets

    async def deliver(self, alerts: Sequence[Alert]) -> list[DeliveryOutcome]:
        """Send each alert to every sink at once; failures are retried, then logged.
        Every attempt is recorded in ``vq.alert_deliveries``."""
        if not alerts:
            return []
        targets = await self.targets()
        ids = [uuid.uuid4() for _ in alerts]
        return list(
            await asyncio.gather(
                *(self._send(t, a, n) for t in targets for a, n in zip(alerts, ids, strict=True))
            )
        )

    async def send_test(self, actor: str) -> list[DeliveryOutcome]:
        """Send a test notification to every sink, this process's and the installation's;
        returns each sink's outcome (recorded like any notification's)."""
        return await self.deliver([make_test_alert(actor)])

    async def _record(
        self,
        target: Target,
        alert: Alert,
        notification_id: uuid.UUID,
        attempt: int,
        outcome: str,
        detail: str | None,
    ) -> None:
        try:
            await self.store.record_alert_delivery(
                notification_id,
                alert.key,
                alert.state,
                target.name,
                target.sink_id,
                target.installation_wide,
                attempt,
                outcome,
                detail,
            )
        except _DB_ERRORS as exc:
            # The delivery itself matters more than its record: log and go on.
            log.warning(
                "could not record the delivery of %s to %s: %s", alert.key, target.name, exc
            )

    async def _send(
        self, target: Target, alert: Alert, notification_id: uuid.UUID
    ) -> DeliveryOutcome:
        cfg = self.settings.alerts
        name = target.name

        def outcome(result: str, attempts: int, detail: str | None) -> DeliveryOutcome:
            return DeliveryOutcome(
                alert.key, name, target.installation_wide, result, attempts, detail
            )

        sink = target.sink
        if sink is None:
            await self._record(target, alert, notification_id, 1, FAILED, target.problem)
            return outcome(FAILED, 1, target.problem)
        for attempt in range(1, cfg.sink_attempts + 1):
            try:
                await asyncio.wait_for(sink.send(alert), cfg.sink_timeout)
            except Exception as exc:
                reason = _reason(exc, cfg.sink_timeout)
                if attempt == cfg.sink_attempts:
                    await self._record(target, alert, notification_id, attempt, FAILED, reason)
                    log.error(
                        "alert sink %s: gave up on %s %s after %d attempts: %s",
                        name,
                        alert.state,
                        alert.key,
                        attempt,
                        reason,
                    )
                    return outcome(FAILED, attempt, reason)
                log.warning(
                    "alert sink %s: attempt %d for %s failed (%s); retrying",
                    name,
                    attempt,
                    alert.key,
                    reason,
                )
                await self._record(target, alert, notification_id, attempt, RETRIED, reason)
                # Back off so a sink that is briefly down gets a chance to recover.
                await asyncio.sleep(cfg.sink_retry_delay * 2 ** (attempt - 1))
            else:
                await self._record(target, alert, notification_id, attempt, SENT, None)
                return outcome(SENT, attempt, None)
        return outcome(FAILED, cfg.sink_attempts, "no attempt was made")


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
