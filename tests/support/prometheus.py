"""Prometheus for the deployment tests: Debian's promtool and prometheus, the metric
names vq exposes, and the PromQL of deploy/prometheus and deploy/grafana."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "vq-rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "vq-rules.test.yml"
EXAMPLE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "vq-dashboard.json"

# A vq metric named in PromQL: not the tail of a recording rule's name (job_type:vq_x:rate5m).
_VQ_NAME = re.compile(r"(?<![\w:])vq_[a-z0-9_]+\b(?!:)")
# What Grafana puts in place of its variables before Prometheus sees an expression.
_GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def tool(name: str) -> str:
    """The path of Debian's ``name`` (package ``prometheus``). Missing, the test is
    skipped on a developer's machine but fails in CI, which installs it (`make debs`)."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        reason = f"{name} is not installed (Debian's prometheus package: `make debs`)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(reason + "; CI must run this test")
        pytest.skip(reason)
    return path


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool; its output is in ``stdout`` + ``stderr``."""
    return subprocess.run(
        [tool("promtool"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


def load_yaml(path: Path) -> Any:
    """A YAML file's content."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules(path: Path = RULES) -> list[dict[str, Any]]:
    """Every rule of a rules file, alerting and recording."""
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]


def alert_rules(path: Path = RULES) -> dict[str, dict[str, Any]]:
    """The alerting rules by name."""
    return {rule["alert"]: rule for rule in rules(path) if "alert" in rule}


def vq_names(expr: str) -> set[str]:
    """The vq metric names an expression selects."""
    return set(_VQ_NAME.findall(expr))


def exposed_names(text: str) -> set[str]:
    """Every sample name a Prometheus text exposition can carry, from its ``# TYPE``
    lines (a histogram's ``_bucket``, ``_sum``, ``_count``) and its samples."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            suffixes = {
                "histogram": ("_bucket", "_sum", "_count"),
                "summary": ("", "_sum", "_count"),
            }
            names.update(name + s for s in suffixes.get(kind, ("",)))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def code_metric_names() -> set[str]:
    """The names vq's code exposes: the core's gauges (a collector over an empty
    snapshot still declares each family) and the metrics plugin's counters."""
    from prometheus_client import REGISTRY

    import vq_plugins.observers.metrics  # noqa: F401  (registers its metrics by importing)
    from vq_core.metrics import QueueCollector, QueueSnapshot

    collector = QueueCollector()
    collector.snapshot = QueueSnapshot(
        stats={
            "by_status": {},
            "by_type": {},
            "depth": 0,
            "oldest_queued_age_s": None,
            "throughput": {},
            "duration_s": {},
        },
        workers=[],
        services=[],
        firing={},
        queues=[],
    )
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode() + generate_latest(REGISTRY).decode()
    return exposed_names(text)


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard's JSON model."""
    model: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return model


def dashboard_panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside (collapsed) rows too."""
    for panel in model["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs(model: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL as Prometheus receives it) of every panel's queries."""
    return [
        (panel["title"], grafana_to_promql(target["expr"]))
        for panel in dashboard_panels(model)
        for target in panel.get("targets", [])
    ]


def grafana_to_promql(expr: str) -> str:
    """The expression with Grafana's variables replaced as Grafana would ($job_type: All)."""
    for variable, value in _GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr.replace("$job_type", ".*")


def check_exprs(exprs: Iterable[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """promtool's parse of each expression, offline: each becomes a recording rule of
    a throwaway rules file that ``promtool check rules`` reads."""
    group = {
        "name": "parse",
        "rules": [{"record": f"parse:expr_{i}", "expr": e} for i, e in enumerate(exprs)],
    }
    path = tmp_path / "exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [group]}), encoding="utf-8")
    return promtool("check", "rules", path)
