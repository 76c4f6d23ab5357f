"""deploy/compose/compose.yaml: valid against the Compose Specification's JSON schema
(tests/deploy/compose-spec.json, see README.md there), migrations run once before the
vq processes, workers outlive their drain, the reference services sit under a profile,
and only loopback or service names are addressed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from vq_core.config import Settings

HERE = Path(__file__).resolve().parent
COMPOSE = HERE.parents[1] / "deploy" / "compose" / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads((HERE / "compose-spec.json").read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(schema)


def test_the_compose_file_is_valid_against_the_compose_schema(
    compose: dict[str, Any], validator: jsonschema.Draft7Validator
) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, errors


def test_the_schema_does_refuse_a_broken_compose_file(
    compose: dict[str, Any], validator: jsonschema.Draft7Validator
) -> None:
    """The validation above can fail: a misspelt key and a bad condition are caught."""
    broken = json.loads(json.dumps(compose))
    broken["services"]["worker"]["stop_grace"] = "60s"
    broken["services"]["web"]["depends_on"]["migrate"]["condition"] = "finished"
    assert len(list(validator.iter_errors(broken))) >= 2


def test_migrations_run_once_before_the_web_process_and_the_workers(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["vq", "migrate"]
    assert migrate.get("restart") == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker"):
        needs = services[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully", name
    assert services["web"]["command"] == ["vq", "run", "--no-worker"]
    assert services["worker"]["command"] == ["vq", "worker"]
    assert services["web"]["build"]["target"] == "web"
    assert services["worker"]["build"]["target"] == "worker"
    assert "replicas" in services["worker"]["deploy"]


def _seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_workers_get_longer_than_their_drain_before_sigkill(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    env = worker["environment"]
    defaults = Settings.model_fields
    grace = float(env.get("VQ_SHUTDOWN_GRACE", defaults["shutdown_grace"].default))
    db = float(env.get("VQ_SHUTDOWN_DB_TIMEOUT", defaults["shutdown_db_timeout"].default))
    # A worker exits within shutdown_grace + 10 s + shutdown_db_timeout (operations.md).
    assert _seconds(worker["stop_grace_period"]) > grace + 10 + db


def test_the_reference_services_are_under_a_profile(compose: dict[str, Any]) -> None:
    reference = compose["services"]["reference"]
    assert reference["profiles"] == ["reference"]
    assert reference["command"][:3] == ["vq", "services", "serve"]
    others = [s for n, s in compose["services"].items() if n != "reference"]
    assert all("profiles" not in s for s in others)


def test_only_loopback_and_service_names_are_addressed(compose: dict[str, Any]) -> None:
    # ${VAR:?message} stands for a value the operator must give (the password).
    text = re.sub(r"\$\{\w+:\?[^}]*\}", "given", COMPOSE.read_text(encoding="utf-8"))
    names = set(compose["services"])
    for host in re.findall(r"://(?:[^@/\s]*@)?([\w.-]+)", text):
        assert host == "127.0.0.1" or host in names, host
    for service in compose["services"].values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port
