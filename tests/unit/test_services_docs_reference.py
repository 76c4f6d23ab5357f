"""docs/services.md stays true: its configuration loads and stays on loopback, and every
fault, route and error category it should describe is there."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from support.services import reference_server

from vq_core.config import Settings
from vq_core.models import ErrorCategory
from vq_core.plugins import collect_services, make_plugin_manager
from vq_plugins.reference.app import ReferenceState, create_app
from vq_plugins.reference.faults import Faults
from vq_plugins.reference.reference_services import ReferenceServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "services.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[ReferenceServer]:
    with reference_server(tmp_path / "media") as server:
        yield server


def test_configuration_examples_load_and_stay_on_loopback(tmp_path: Path) -> None:
    examples = [tomllib.loads(text) for text in blocks("toml")]
    vq_tomls = [data for data in examples if "plugin_config" in data]
    assert len(vq_tomls) >= 2
    for data in vq_tomls:
        settings = Settings(data_dir=tmp_path, **data)
        pm = make_plugin_manager(settings)
        services = collect_services(pm, settings)
        for name in data["plugin_config"]:
            assert name in services, f"{name} not registered from the example"
        for options in data["plugin_config"].values():
            for value in options.values():
                if isinstance(value, str) and "://" in value:
                    assert urlsplit(value).hostname == "127.0.0.1"


def test_every_fault_route_and_category_is_documented(tmp_path: Path) -> None:
    text = DOC.read_text()
    for key in Faults.model_fields:
        assert f"`{key}`" in text, f"fault {key} is not documented"
    for category in ErrorCategory:
        if category is not ErrorCategory.CANCELLED:
            assert f"`{category.value}`" in text, f"category {category} is not documented"
    app = create_app(ReferenceState(tmp_path))
    for route in app.routes:
        path = getattr(route, "path", "")
        assert path.split("{")[0].rstrip("/") in text, f"route {path} is not documented"
