"""Docs stay true: the plugin example of docs/plugins.md runs on a real worker."""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


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
