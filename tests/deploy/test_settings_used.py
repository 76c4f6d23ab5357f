"""Every ``VQ_*`` name in a file under deploy/ is a real setting of vq.

The scan covers every file there (compose, Kubernetes, systemd, Prometheus, ...), so a
new deployment file is checked without touching this test. A name is real when:

- ``VQ_NAME`` is a field of ``Settings`` (vq_core/config.py), or a variable vq reads
  itself (``VQ_CONFIG``);
- ``VQ_TABLE__KEY`` names a field of a nested settings model (``VQ_ALERTS__QUEUE_DEPTH``);
- ``VQ_PLUGIN_CONFIG__PLUGIN__KEY`` names a plugin that reads ``plugin_config.PLUGIN``
  and a key that plugin's modules use.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from pydantic import BaseModel

from vq_core.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NAME = re.compile(r"(?<![A-Za-z0-9_])VQ_[A-Z0-9_]*[A-Z0-9]")
#: Variables vq reads that are not settings: where the settings file is.
NOT_SETTINGS = {"VQ_CONFIG"}


def deploy_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file())


def names_in(path: Path) -> set[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return set()
    return set(NAME.findall(text))


@cache
def plugin_words() -> dict[str, set[str]]:
    """plugin_config table -> the words of the modules that read it."""
    found: dict[str, set[str]] = {}
    for module in [*ROOT.glob("vq_plugins/**/*.py"), *ROOT.glob("vq_ui/**/*.py")]:
        text = module.read_text(encoding="utf-8")
        constants = dict(re.findall(r'^(\w+) = "(\w+)"', text, re.M))
        for arg in re.findall(r"plugin_settings\((\"\w+\"|\w+)\)", text):
            table = arg.strip('"') if arg.startswith('"') else constants.get(arg)
            if table:
                found.setdefault(table, set()).update(re.findall(r"\w+", text))
    return found


def problem(name: str) -> str | None:
    """Why ``name`` is not a setting, or None when it is one."""
    if name in NOT_SETTINGS:
        return None
    parts = name.removeprefix("VQ_").lower().split("__")
    field = Settings.model_fields.get(parts[0])
    if field is None:
        return f"{name}: vq has no setting {parts[0]!r}"
    if parts[0] == "plugin_config":
        if len(parts) != 3:
            return f"{name}: plugin options are VQ_PLUGIN_CONFIG__PLUGIN__KEY"
        words = plugin_words().get(parts[1])
        if words is None:
            return f"{name}: no plugin reads plugin_config.{parts[1]}"
        if parts[2] not in words:
            return f"{name}: plugin_config.{parts[1]} has no option {parts[2]!r}"
        return None
    model = field.annotation
    if len(parts) == 1:
        return None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return f"{name}: {parts[0]!r} has no nested settings"
    if len(parts) != 2 or parts[1] not in model.model_fields:
        return f"{name}: [{parts[0]}] has no setting {'__'.join(parts[1:])!r}"
    return None


@pytest.mark.parametrize("path", deploy_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_vq_variable_in_deploy_is_a_setting(path: Path) -> None:
    wrong = sorted(filter(None, map(problem, names_in(path))))
    assert not wrong, wrong


def test_the_scan_finds_names_and_refuses_made_up_ones() -> None:
    """The check above can fail: the scan sees the compose file's names, and each kind of
    made-up name is refused."""
    assert "VQ_DATABASE_URL" in names_in(DEPLOY / "compose" / "compose.yaml")
    assert problem("VQ_DATABASE_URL") is None
    assert problem("VQ_ALERTS__QUEUE_DEPTH") is None
    assert problem("VQ_PLUGIN_CONFIG__ORCHESTRATOR__BASE_URL") is None
    assert problem("VQ_PLUGIN_CONFIG__UI__TRUSTED_PROXIES") is None
    assert problem("VQ_DATABASE") is not None
    assert problem("VQ_ALERTS__DEPTH") is not None
    assert problem("VQ_CONCURRENCY__MAX") is not None
    assert problem("VQ_PLUGIN_CONFIG__NOSUCH__BASE_URL") is not None
    assert problem("VQ_PLUGIN_CONFIG__ORCHESTRATOR__BASE_UR") is not None


def test_the_systemd_environment_example_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """vq.env.example's values, set as systemd sets them, are valid settings."""
    lines = (DEPLOY / "systemd" / "vq.env.example").read_text(encoding="utf-8").splitlines()
    env = dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    assert env
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.database_url == env["VQ_DATABASE_URL"]
    assert str(settings.data_dir) == env["VQ_DATA_DIR"]
    assert settings.plugin_settings("ui")["trusted_proxies"] == "127.0.0.1"
