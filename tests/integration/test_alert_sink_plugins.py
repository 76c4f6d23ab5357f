"""Alert sinks as plugins: only configured sinks are built, and the entry points register them."""

from __future__ import annotations

from vq_core.alerts.engine import collect_sinks
from vq_core.config import Settings
from vq_core.plugins import make_plugin_manager


def test_only_configured_sinks_are_built(settings: Settings) -> None:
    plugins = (
        "vq_plugins.alert_sinks.alert_log",
        "vq_plugins.alert_sinks.alert_webhook",
        "vq_plugins.alert_sinks.alert_email",
    )
    bare = make_plugin_manager(settings, plugins, load_entrypoints=False)
    assert [s.name for s in collect_sinks(bare, settings)] == ["log"]
    configured = settings.model_copy(
        update={"plugin_config": {"webhook": {"url": "http://127.0.0.1:9/hook"}}}
    )
    pm = make_plugin_manager(configured, plugins, load_entrypoints=False)
    assert sorted(s.name for s in collect_sinks(pm, configured)) == ["log", "webhook"]


def test_entry_points_register_the_built_in_plugins(settings: Settings) -> None:
    pm = make_plugin_manager(settings)
    for name in ("alert_log", "alert_webhook", "alert_email", "metrics", "job_log"):
        assert pm.get_plugin(name) is not None, name
