"""Building the plugin manager: built-ins and third parties alike come from entry points."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

import pluggy

from vq_core import hookspecs
from vq_core.config import ConfigError, Settings
from vq_core.video_service import VideoService

PROJECT = "vq"


class PluginManager(pluggy.PluginManager):
    """pluggy's manager with vq's hook specifications."""

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.add_hookspecs(hookspecs)


def make_plugin_manager(
    settings: Settings,
    extra_plugins: Iterable[str] = (),
    load_entrypoints: bool = True,
) -> PluginManager:
    """Register the ``vq`` entry points, then extra plugin modules (``--plugin`` or
    ``settings.plugins``), drop disabled ones, and check every hook is known.

    :raises ConfigError: a named plugin cannot be imported or implements an unknown hook.
    """
    pm = PluginManager()
    if load_entrypoints:
        pm.load_setuptools_entrypoints(PROJECT)
    for name in [*settings.plugins, *extra_plugins]:
        if pm.get_plugin(name) is not None or pm.has_plugin(name):
            continue
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"cannot load plugin {name!r}: {exc}") from None
        pm.register(module, name=name)
    for name in settings.disabled_plugins:
        plugin = pm.get_plugin(name)
        if plugin is not None:
            pm.unregister(plugin)
        pm.set_blocked(name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigError(f"plugin error: {exc}") from None
    return pm


def collect_services(pm: pluggy.PluginManager, settings: Settings) -> dict[str, VideoService]:
    """Every registered video service by name; two services with one name is a config error."""
    services: dict[str, VideoService] = {}
    for provided in pm.hook.vq_register_services(settings=settings):
        for service in provided or []:
            if service.name in services:
                raise ConfigError(f"two plugins provide a service named {service.name!r}")
            services[service.name] = service
    return services
