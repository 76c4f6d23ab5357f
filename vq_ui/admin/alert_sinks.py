"""The alert sinks card of the admin page: where alerts go, and how each delivery went.

Everyone sees whether any installation-wide sink exists (while there is none, the card
says that alerts reach only the log) and each notification's outcome per sink (sent,
retried, failed) from ``vq.alert_deliveries``. Admins also see each sink's target and
manage the sinks: add (checked by ``vq_core.sink_config``), remove, and send a test
notification to every sink. Every one of those actions checks the admin role again on
the server, since a browser can send any event over the websocket. Secrets are typed
into password fields and never sent back to any browser.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from nicegui import ui

from vq_core.alerts.engine import AlertEngine, DeliveryOutcome, collect_sinks, sink_builder
from vq_core.config import ConfigError, Settings
from vq_core.errors import InvalidInput
from vq_core.models import Actor
from vq_core.plugins import PluginManager, make_plugin_manager
from vq_core.sink_config import EMAIL, SINK_KINDS, WEBHOOK, SinkSpec, email_spec, webhook_spec
from vq_core.store import Store
from vq_core.store.alert_sinks import FAILED, RETRIED, SENT, AlertSinkInfo, Delivery
from vq_ui.admin.format import ago
from vq_ui.auth.roles import User

log = logging.getLogger(__name__)

# Notifications x sinks shown; read from the newest attempts.
MAX_DELIVERY_ROWS = 30
ATTEMPTS_READ = 300
LOG_ONLY = (
    "Only the log sink is configured: alerts are written to the log and reach no one. "
    "Add a webhook or e-mail sink (admins, here or `vq alerts sinks add`)."
)
OUTCOME_COLORS = {SENT: "positive", RETRIED: "warning", FAILED: "negative"}

SINK_COLUMNS = [
    {"name": "name", "label": "Sink", "field": "name", "align": "left"},
    {"name": "kind", "label": "Kind", "field": "kind", "align": "left"},
]
ADMIN_SINK_COLUMNS = [
    *SINK_COLUMNS,
    {
        "name": "target",
        "label": "Target",
        "field": "target",
        "align": "left",
        "style": "white-space: normal; word-break: break-all",
    },
    {"name": "secret", "label": "Secret", "field": "secret", "align": "left"},
    {"name": "added", "label": "Added", "field": "added", "align": "left"},
    {"name": "actions", "label": "", "field": "name", "align": "right"},
]
DELIVERY_COLUMNS = [
    {"name": "at", "label": "When", "field": "at", "align": "left"},
    {"name": "alert", "label": "Notification", "field": "alert", "align": "left"},
    {"name": "sink", "label": "Sink", "field": "sink", "align": "left"},
    {"name": "outcome", "label": "Outcome", "field": "outcome", "align": "left"},
    {"name": "attempts", "label": "Attempts", "field": "attempts"},
    {
        "name": "detail",
        "label": "Detail",
        "field": "detail",
        "align": "left",
        "style": "white-space: normal; word-break: break-word",
    },
]
_OUTCOME_CELL = """
<q-td :props="props">
  <q-badge :color="props.row.outcome_color" :label="props.value"
    :data-outcome="props.value" :data-sink="props.row.sink" />
</q-td>
"""
_REMOVE_CELL = """
<q-td :props="props">
  <q-btn flat dense size="sm" icon="delete" label="Remove" color="negative"
    :data-sink="props.row.name" data-action="sink-remove"
    @click="() => $parent.$emit('sink-remove', props.row.name)" />
</q-td>
"""

_PLUGIN_MANAGERS: dict[int, PluginManager] = {}


def _plugin_manager(settings: Settings) -> PluginManager:
    """The page process's plugin manager, built once: it builds the sinks a test sends to."""
    pm = _PLUGIN_MANAGERS.get(id(settings))
    if pm is None:
        pm = _PLUGIN_MANAGERS[id(settings)] = make_plugin_manager(settings)
    return pm


def sink_row(sink: AlertSinkInfo, now: datetime) -> dict[str, Any]:
    """A row of the sinks table (what admins see; others get name and kind only)."""
    return {
        "name": sink.name,
        "kind": sink.kind,
        "target": sink.target,
        "secret": "set" if sink.has_secret else "-",
        "added": f"{sink.created_by} · {ago(sink.created_at, now)}",
    }


def delivery_rows(attempts: Sequence[Delivery], now: datetime) -> list[dict[str, Any]]:
    """One row per notification and sink from the attempts (newest first): the last
    attempt's outcome, how many there were, and the last failure's detail."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for a in attempts:
        key = (str(a.notification), a.sink)
        row = rows.get(key)
        if row is None:
            if len(rows) >= MAX_DELIVERY_ROWS:
                continue
            sink = a.sink if a.installation_wide else f"{a.sink} (process)"
            rows[key] = {
                "key": f"{a.notification}:{a.sink}",
                "at": ago(a.at, now),
                "alert": f"{a.alert_state} {a.alert_key}",
                "sink": sink,
                "outcome": a.outcome,
                "outcome_color": OUTCOME_COLORS.get(a.outcome, "grey"),
                "attempts": a.attempt,
                "detail": a.detail or "",
            }
        elif not row["detail"] and a.detail:
            row["detail"] = a.detail  # sent after retries: say what the retries were about
    return list(rows.values())


def parse_sink_form(values: dict[str, Any]) -> SinkSpec:
    """The checked sink from the add dialog's fields; ``InvalidInput`` names the field."""
    kind = str(values.get("kind") or "")
    name = str(values.get("name") or "")
    timeout_text = str(values.get("timeout") or "").strip()
    try:
        timeout = float(timeout_text) if timeout_text else None
    except ValueError:
        raise InvalidInput(f"timeout: not a number: {timeout_text[:40]!r}") from None
    if kind == WEBHOOK:
        return webhook_spec(
            name, str(values.get("url") or ""), str(values.get("secret") or "") or None, timeout
        )
    if kind == EMAIL:
        port_text = str(values.get("smtp_port") or "").strip()
        try:
            port = int(port_text) if port_text else None
        except ValueError:
            raise InvalidInput(f"port: not a whole number: {port_text[:40]!r}") from None
        return email_spec(
            name,
            to=str(values.get("to") or ""),
            host=str(values.get("smtp_host") or ""),
            sender=str(values.get("sender") or ""),
            port=port,
            username=str(values.get("username") or "") or None,
            password=str(values.get("password") or "") or None,
            starttls=bool(values.get("starttls")),
            use_ssl=bool(values.get("ssl")),
            timeout=timeout,
        )
    raise InvalidInput(f"kind: choose one of {', '.join(SINK_KINDS)}")


class AlertSinksPanel:
    """The alert sinks card; ``refresh()`` runs with the page's timer.

    :param authorize: asked again before every change (signed out or role changed: the
        page leaves), as ``Actions`` does.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        user: User,
        authorize: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.user = user
        self.is_admin = user.can("admin")
        self.authorize = authorize
        self.names: set[str] = set()
        with ui.card().classes("w-full").props("data-panel=alert-sinks"):
            with ui.row().classes("w-full items-center"):
                self.title = ui.label("Alert sinks").classes("text-sm font-medium")
                ui.space()
                if self.is_admin:
                    ui.button("Add sink", icon="add", on_click=self.open_add).props(
                        "flat dense size=sm data-action=sink-add"
                    )
                    ui.button("Send test", icon="send", on_click=self.send_test).props(
                        "flat dense size=sm data-action=sink-test"
                    )
            self.warning = (
                ui.label(LOG_ONLY)
                .classes("w-full bg-orange-1 text-warning p-2 rounded text-sm")
                .props("data-sinks-warning=log-only")
            )
            self.warning.set_visibility(False)
            columns = ADMIN_SINK_COLUMNS if self.is_admin else SINK_COLUMNS
            self.sinks = (
                ui.table(columns=columns, rows=[], row_key="name")
                .classes("w-full")
                .props("flat dense hide-bottom no-data-label='No installation-wide sink'")
            )
            if self.is_admin:
                self.sinks.add_slot("body-cell-actions", _REMOVE_CELL)
                self.sinks.on("sink-remove", lambda e: self.remove(e.args))
            ui.label("Deliveries").classes("text-xs text-grey-7 mt-2")
            self.deliveries = (
                ui.table(columns=DELIVERY_COLUMNS, rows=[], row_key="key")
                .classes("w-full")
                .props("flat dense hide-bottom no-data-label='No notification sent yet'")
            )
            self.deliveries.add_slot("body-cell-outcome", _OUTCOME_CELL)
        if self.is_admin:
            self._add_dialog()
            self._remove_dialog()

    # -- building ---------------------------------------------------------------------

    def _add_dialog(self) -> None:
        with (
            ui.dialog() as self.add_dialog,
            ui.card().classes("min-w-96").props("data-dialog=sink-add"),
        ):
            ui.label("Add an alert sink").classes("text-lg font-medium")
            self.kind = ui.select(list(SINK_KINDS), value=WEBHOOK, label="Kind").props(
                "data-sink-field=kind"
            )
            self.fields: dict[str, Any] = {
                "name": ui.input("Name").props("data-sink-field=name"),
            }
            with (
                ui.column()
                .classes("w-full gap-1")
                .bind_visibility_from(self.kind, "value", backward=lambda v: v == WEBHOOK)
            ):
                self.fields["url"] = (
                    ui.input("URL (http or https)").classes("w-full").props("data-sink-field=url")
                )
                self.fields["secret"] = ui.input("Signing secret (optional)", password=True).props(
                    "data-sink-field=secret autocomplete=new-password"
                )
            with (
                ui.column()
                .classes("w-full gap-1")
                .bind_visibility_from(self.kind, "value", backward=lambda v: v == EMAIL)
            ):
                self.fields["to"] = ui.input("To (comma-separated)").props("data-sink-field=to")
                self.fields["sender"] = ui.input("From").props("data-sink-field=from")
                self.fields["smtp_host"] = ui.input("SMTP host").props("data-sink-field=smtp_host")
                self.fields["smtp_port"] = ui.input("SMTP port (25)").props(
                    "data-sink-field=smtp_port"
                )
                self.fields["username"] = ui.input("Username (optional)").props(
                    "data-sink-field=username"
                )
                self.fields["password"] = ui.input("Password (optional)", password=True).props(
                    "data-sink-field=password autocomplete=new-password"
                )
                self.fields["starttls"] = ui.checkbox("STARTTLS")
                self.fields["ssl"] = ui.checkbox("TLS from the start (SSL)")
            self.fields["timeout"] = ui.input("Timeout in seconds (optional)").props(
                "data-sink-field=timeout"
            )
            with ui.row().classes("w-full justify-end"):
                ui.button("Close", on_click=self.add_dialog.close).props(
                    "flat data-action=sink-add-close"
                )
                ui.button("Add", on_click=self.add).props("data-action=sink-add-save")

    def _remove_dialog(self) -> None:
        with ui.dialog() as self.confirm, ui.card().props("data-dialog=sink-remove"):
            self.confirm_text = ui.label("")
            with ui.row().classes("w-full justify-end"):
                ui.button("Keep it", on_click=lambda: self.confirm.submit(False)).props(
                    "flat data-action=sink-keep"
                )
                ui.button(
                    "Remove sink", color="negative", on_click=lambda: self.confirm.submit(True)
                ).props("data-action=sink-remove-confirm")

    # -- reading ----------------------------------------------------------------------

    async def refresh(self) -> None:
        """Re-read the sinks and the latest deliveries."""
        sinks = await self.store.list_alert_sinks()
        attempts = await self.store.list_alert_deliveries(ATTEMPTS_READ)
        now = datetime.now(UTC)
        self.names = {s.name for s in sinks}
        self.warning.set_visibility(not sinks)
        self.title.set_text(
            f"Alert sinks: {len(sinks)} for the installation" if sinks else "Alert sinks: log only"
        )
        if self.is_admin:
            rows = [sink_row(s, now) for s in sinks]
        else:  # targets (URLs, addresses) are for admins
            rows = [{"name": s.name, "kind": s.kind} for s in sinks]
        for table, fresh in ((self.sinks, rows), (self.deliveries, delivery_rows(attempts, now))):
            if fresh != table.rows:
                table.rows = fresh
                table.update()

    # -- acting (admins only, checked again on every event) ---------------------------

    async def _allowed(self) -> bool:
        if not self.is_admin:  # a forged event from an operator's or viewer's browser
            ui.notify("Only admins may manage alert sinks", type="negative")
            return False
        return self.authorize is None or await self.authorize()

    async def open_add(self) -> None:
        """Open the add dialog, emptied."""
        if not await self._allowed():
            return
        for field in self.fields.values():
            field.set_value(False if isinstance(field, ui.checkbox) else "")
        self.add_dialog.open()

    async def add(self) -> None:
        """Check the dialog's fields and store the sink; a bad field is named and nothing
        is stored."""
        if not await self._allowed():
            return
        values = {name: field.value for name, field in self.fields.items()}
        values["kind"] = self.kind.value
        try:
            spec = parse_sink_form(values)
            info = await self.store.add_alert_sink(spec, Actor(self.user.label, "page"))
        except InvalidInput as exc:
            ui.notify(f"Not added: {exc}", type="negative", multi_line=True)
            return
        except Exception as exc:  # the page must survive a database hiccup
            log.exception("adding alert sink failed")
            ui.notify(f"Could not add the sink: {exc}", type="negative", multi_line=True)
            return
        log.info("alert sink %s (%s) added by %s", info.name, info.kind, self.user.label)
        for name in ("secret", "password"):  # the secret does not linger in the browser
            self.fields[name].set_value("")
        self.add_dialog.close()
        ui.notify(f"Alert sink {info.name} added", type="positive")
        await self.refresh()

    async def remove(self, raw: object) -> None:
        """Ask for confirmation, then remove a sink."""
        name = str(raw)[:64]
        if not await self._allowed():
            return
        if name not in self.names:
            ui.notify(f"No alert sink named {name!r}", type="warning")
            return
        self.confirm_text.set_text(f"Remove alert sink {name}? Alerts stop going there.")
        if await self.confirm is not True or not await self._allowed():
            return
        try:
            removed = await self.store.remove_alert_sink(name)
        except Exception as exc:
            log.exception("removing alert sink %s failed", name)
            ui.notify(f"Could not remove {name}: {exc}", type="negative", multi_line=True)
            return
        if removed:
            log.info("alert sink %s removed by %s", name, self.user.label)
            ui.notify(f"Alert sink {name} removed", type="positive")
        else:
            ui.notify(f"No alert sink named {name!r}", type="warning")
        await self.refresh()

    async def send_test(self) -> None:
        """Send a test notification to every sink and show each outcome."""
        if not await self._allowed():
            return
        try:
            pm = _plugin_manager(self.settings)
            engine = AlertEngine(
                self.store,
                self.settings,
                collect_sinks(pm, self.settings),
                sink_builder(pm, self.settings),
            )
            outcomes = await engine.send_test(f"{self.user.label} (page)")
        except ConfigError as exc:
            ui.notify(f"Cannot send a test: {exc}", type="negative", multi_line=True)
            return
        except Exception as exc:
            log.exception("test notification failed")
            ui.notify(f"Could not send a test: {exc}", type="negative", multi_line=True)
            return
        tone: Literal["positive", "warning"] = (
            "positive" if all(o.outcome == SENT for o in outcomes) else "warning"
        )
        ui.notify(_summary(outcomes), type=tone, multi_line=True)
        await self.refresh()


def _summary(outcomes: Sequence[DeliveryOutcome]) -> str:
    parts = [f"{o.sink}: {o.outcome}" + (f" ({o.detail})" if o.detail else "") for o in outcomes]
    return "Test sent. " + "; ".join(parts)
