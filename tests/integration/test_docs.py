"""Docs stay true: every hook, setting and command is documented."""

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


async def test_the_plugin_example_in_the_docs_runs(store, settings, dsn) -> None:  # type: ignore[no-untyped-def]
    """The example service of docs/plugins.md, executed as written, renders a job."""
    import re
    import types

    from support.helpers import eventually, running_worker

    from vq_core.models import JobStatus, NewJob
    from vq_core.plugins import collect_services, make_plugin_manager

    text = (DOCS / "plugins.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None
    module = types.ModuleType("docs_example")
    exec(compile(code.group(1), "docs/plugins.md", "exec"), module.__dict__)
    pm = make_plugin_manager(settings, load_entrypoints=False)
    pm.register(module)
    services = collect_services(pm, settings)
    assert list(services) == ["echo"]
    async with running_worker(store, settings, services, dsn, pm=pm):
        ok = await store.enqueue(NewJob("echo", {"question": "hi"}))
        bad = await store.enqueue(NewJob("echo", {}))

        async def finished() -> bool:
            a, b = await store.get_job(ok.id), await store.get_job(bad.id)
            return a.status is JobStatus.COMPLETED and b.status is JobStatus.FAILED

        await eventually(finished)
    assert (await store.get_job(ok.id)).result == {"echo": "hi"}
    assert (await store.get_job(bad.id)).error["type"] == "INVALID_INPUT"
