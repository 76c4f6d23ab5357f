"""deploy/grafana/vq-dashboard.json: a valid dashboard model whose panels cover what the
product asks to see, query only metrics vq exposes, and parse as PromQL (promtool,
offline; tests/e2e/test_prometheus.py also evaluates them against a real Prometheus)."""

from __future__ import annotations

import re
from pathlib import Path

from support.prometheus import (
    check_exprs,
    code_metric_names,
    dashboard,
    dashboard_exprs,
    dashboard_panels,
    vq_names,
)


def test_dashboard_is_a_grafana_model() -> None:
    model = dashboard()
    assert model["uid"] and model["title"] and isinstance(model["schemaVersion"], int)
    panels = list(dashboard_panels(model))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        here = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & here, f"{panel['title']} overlaps another panel"
        cells |= here
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"{panel['title']} has no query"
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]


def test_panels_cover_depth_throughput_wait_render_failures_and_workers() -> None:
    exprs = [e for _, e in dashboard_exprs(dashboard())]
    used = set().union(*(vq_names(e) for e in exprs))
    assert "vq_queue_ready_by_type" in used  # depth
    assert {"vq_queue_throughput_per_minute", "vq_jobs_processed_total"} <= used  # throughput
    assert "vq_job_wait_seconds_bucket" in used  # wait
    assert "vq_job_processing_seconds_bucket" in used  # render times
    assert any("vq_job_failures_total" in e and "by (category)" in e for e in exprs)
    assert {"vq_queue_workers", "vq_worker_consecutive_failures", "vq_worker_stale"} <= used


def test_panels_query_only_metrics_vq_exposes() -> None:
    model = dashboard()
    exposed = code_metric_names()
    for title, expr in dashboard_exprs(model):
        names = vq_names(expr)
        assert names, f"{title}: no vq metric in {expr}"
        assert names <= exposed, f"{title}: {names - exposed} are not exposed by vq"
    for variable in model["templating"]["list"]:
        query = variable.get("definition", "")
        for name in re.findall(r"label_values\((\w+)", query):
            assert name in exposed, f"variable {variable['name']}: {name} is not exposed"


def test_every_panel_expression_parses(tmp_path: Path) -> None:
    exprs = [e for _, e in dashboard_exprs(dashboard())]
    checked = check_exprs(exprs, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in checked.stdout


def test_the_parse_check_rejects_bad_promql(tmp_path: Path) -> None:
    checked = check_exprs(["sum by (job_type) (rate(vq_jobs_processed_total[1m])"], tmp_path)
    assert checked.returncode != 0
