"""Every built-in plugin's entry-point name is its module's name, so a name in
``disabled_plugins`` or ``vq plugins`` leads straight to the file."""

from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, entry_points

import pytest

BUILT_IN = sorted(
    (ep for ep in entry_points(group="vq") if ep.value.split(".")[0] in {"vq_plugins", "vq_ui"}),
    key=lambda ep: ep.name,
)


def test_the_built_in_plugins_are_registered() -> None:
    assert {"noop", "local_renderer", "orchestrator", "metrics", "ui"} <= {e.name for e in BUILT_IN}


@pytest.mark.parametrize("ep", BUILT_IN, ids=lambda ep: ep.name)
def test_entry_point_name_is_the_module_name(ep: EntryPoint) -> None:
    assert ep.value.rsplit(".", 1)[-1] == ep.name, f"{ep.name} = {ep.value}"
    importlib.import_module(ep.value)
