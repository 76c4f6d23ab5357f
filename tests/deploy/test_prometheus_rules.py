"""deploy/prometheus: the rules pass ``promtool check rules`` and their unit tests
(``promtool test rules``), every alert is tested firing and not firing, the thresholds
are vq's own alert defaults, and the example configuration is valid.

Debian's promtool is required in CI (``make debs`` installs it); elsewhere these tests
are skipped without it."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from support.prometheus import (
    EXAMPLE_CONFIG,
    RULE_TESTS,
    RULES,
    alert_rules,
    code_metric_names,
    load_yaml,
    promtool,
    rules,
    vq_names,
)

from vq_core.config import AlertSettings


def test_rules_pass_promtool_check() -> None:
    checked = promtool("check", "rules", RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout


def test_rules_pass_their_unit_tests() -> None:
    tested = promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases = [
        case for test in load_yaml(RULE_TESTS)["tests"] for case in test.get("alert_rule_test", [])
    ]
    alerts = alert_rules()
    assert {c["alertname"] for c in cases} == set(alerts)
    for name in alerts:
        expected = [c["exp_alerts"] for c in cases if c["alertname"] == name]
        assert any(expected), f"{name} is never tested firing"
        assert not all(expected), f"{name} is never tested not firing"


def test_the_product_alerts_are_there_with_durations_severities_and_annotations() -> None:
    alerts = alert_rules()
    assert {
        "VQQueueDepthHigh",
        "VQOldestReadyJobWaiting",
        "VQWorkerFailing",
        "VQWorkerStale",
        "VQServiceUnhealthy",
    } <= set(alerts)
    for name, rule in alerts.items():
        assert rule.get("for"), f"{name} has no for: duration"
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert {"summary", "description"} <= set(rule["annotations"]), name


def test_thresholds_are_vq_alert_defaults() -> None:
    # The same numbers as vq's own alerting, so both say the same thing.
    defaults = AlertSettings()
    alerts = alert_rules()
    assert alerts["VQQueueDepthHigh"]["expr"].endswith(f"> {defaults.queue_depth}")
    assert alerts["VQWorkerFailing"]["expr"].endswith(f">= {defaults.worker_failures}")
    assert alerts["VQOldestReadyJobWaiting"]["expr"].endswith(f"> {defaults.oldest_queued_s:.0f}")


def test_rules_select_only_metrics_vq_exposes() -> None:
    used = set().union(*(vq_names(rule["expr"]) for rule in rules()))
    assert used, "no vq metric found in the rules"
    assert used <= code_metric_names(), used - code_metric_names()


def test_the_unit_tests_catch_a_changed_threshold_or_duration(tmp_path: Path) -> None:
    # The unit tests can fail: a depth threshold of 30, or an immediate stale alert.
    for old, new in (
        ("> 20", "> 30"),
        ("(vq_worker_stale) == 1\n        for: 1m", "(vq_worker_stale) == 1\n        for: 0m"),
    ):
        text = RULES.read_text(encoding="utf-8")
        assert old in text
        (tmp_path / RULES.name).write_text(text.replace(old, new), encoding="utf-8")
        shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
        tested = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
        assert tested.returncode != 0, f"{old!r} -> {new!r} went unnoticed"
        assert "FAILED" in tested.stdout + tested.stderr


def test_example_config_is_valid_and_matches_the_rules(tmp_path: Path) -> None:
    config = load_yaml(EXAMPLE_CONFIG)
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "vq"  # what VQMetricsDown selects
    assert 'up{job="vq"}' in alert_rules()["VQMetricsDown"]["expr"]
    assert job["metrics_path"] == "/api/v1/metrics"
    assert config["rule_files"] == [RULES.name]
    # promtool checks that the token file exists: point it at one of the test's.
    token = tmp_path / "vq-token"
    token.write_text("vq_example\n", encoding="utf-8")
    job["authorization"]["credentials_file"] = str(token)
    (tmp_path / EXAMPLE_CONFIG.name).write_text(yaml.safe_dump(config), encoding="utf-8")
    shutil.copy(RULES, tmp_path / RULES.name)
    checked = promtool("check", "config", tmp_path / EXAMPLE_CONFIG.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout + checked.stderr
