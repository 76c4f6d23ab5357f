"""Docs stay true: every hook, setting and core command is documented."""

from __future__ import annotations

from pathlib import Path

import click

from vq_core.cli.main import cli
from vq_core.config import AlertSettings, Settings
from vq_core.plugins import PluginManager

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_hook_is_documented_with_its_arguments() -> None:
    text = (DOCS / "plugins.md").read_text()
    pm = PluginManager()
    names = [n for n in dir(pm.hook) if n.startswith("vq_")]
    assert names
    for name in names:
        caller = getattr(pm.hook, name)
        assert caller.spec is not None
        signature = f"{name}({', '.join(caller.spec.argnames)})"
        assert signature in text, f"docs/plugins.md does not document {signature}"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    for name in Settings.model_fields:
        assert f"`{name}" in text, f"setting {name} missing from docs/configuration.md"
    for name in AlertSettings.model_fields:
        assert name in text, f"alerts.{name} missing from docs/configuration.md"


def test_every_core_command_is_documented() -> None:
    text = (DOCS / "cli.md").read_text()

    def walk(group: click.Group, prefix: str) -> list[str]:
        names = []
        for name, command in group.commands.items():
            full = f"{prefix} {name}"
            names.append(full)
            if isinstance(command, click.Group):
                names += walk(command, full)
        return names

    for name in walk(cli, "vq"):
        assert f"`{name}" in text, f"{name} missing from docs/cli.md"
