"""deploy/kubernetes/, validated offline: every object against the Kubernetes schemas
(kubernetes-validate, strict), KEDA's objects against the fields KEDA documents
(keda_schema.json beside this file), and what ties the manifests to vq itself: the
ScaledObject's query is vq's depth query, the probe paths are the API's, the worker's
grace period covers its shutdown, the settings parse. No cluster, no database (the
query's count is checked in tests/integration/test_keda_query.py)."""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel

from vq_core.config import Settings
from vq_core.db.queries import sql
from vq_core.worker.process import ABORT_WAIT

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
KEDA_SCHEMA = json.loads((Path(__file__).with_name("keda_schema.json")).read_text("utf-8"))
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}
K8S_VERSION = kubernetes_validate.latest_version()
Obj = dict[str, Any]


def manifests() -> list[Path]:
    """The manifest files (everything but the kustomization)."""
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def objects() -> list[Obj]:
    """Every object of every manifest, in file order."""
    found: list[Obj] = []
    for path in manifests():
        found.extend(d for d in yaml.safe_load_all(path.read_text("utf-8")) if d is not None)
    return found


def one(kind: str, name: str) -> Obj:
    matches = [o for o in objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} objects"
    return matches[0]


def pod_specs() -> Iterator[tuple[str, Obj]]:
    """(kind/name, pod spec) of every workload."""
    for o in objects():
        if o["kind"] in {"Deployment", "Job"}:
            yield f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"]


def container(kind: str, name: str) -> Obj:
    (only,) = one(kind, name)["spec"]["template"]["spec"]["containers"]
    return only  # type: ignore[no-any-return]


def env_value(c: Obj, name: str) -> str:
    (value,) = [e["value"] for e in c["env"] if e["name"] == name]
    return value  # type: ignore[no-any-return]


def is_setting(env_name: str) -> bool:
    """Whether ``VQ_A__B`` names a setting (``a``, or ``b`` of the ``a`` table)."""
    first, *rest = env_name.removeprefix("VQ_").lower().split("__")
    field = Settings.model_fields.get(first)
    if field is None:
        return False
    if not rest:
        return True
    model = field.annotation
    if isinstance(model, type) and issubclass(model, BaseModel):
        return len(rest) == 1 and rest[0] in model.model_fields
    return first == "plugin_config" and len(rest) == 2  # a plugin's own table


def normalised(text: str) -> str:
    """A statement without its ``--`` comment lines (a named block starts with its
    purpose), whitespace runs as one space, no final semicolon."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return re.sub(r"\s+", " ", " ".join(lines)).strip().rstrip(";").strip()


def keda_validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = copy.deepcopy(KEDA_SCHEMA)
    del schema["oneOf"]
    schema["$ref"] = f"#/$defs/{kind}"
    return jsonschema.Draft202012Validator(schema)


def keda_errors(obj: Obj) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in keda_validator(obj["kind"]).iter_errors(obj)
    ]


# -- the files ------------------------------------------------------------------------


def test_the_kustomization_lists_every_manifest_and_nothing_else() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text("utf-8"))
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == [p.name for p in manifests()]


def test_every_kubernetes_object_is_valid_against_the_newest_bundled_schemas() -> None:
    checked = []
    for obj in objects():
        if obj["kind"] in KEDA_KINDS:
            continue
        # strict: a field the schema does not know is an error, not silently dropped.
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        checked.append(obj["kind"])
    expected = {"Namespace", "ConfigMap", "Secret", "Job", "Deployment", "Service"}
    assert expected | {"PodDisruptionBudget"} == set(checked)


def test_the_validator_refuses_what_kubernetes_would() -> None:
    # The check above has teeth: a misspelt field and a wrong type are caught.
    deployment = copy.deepcopy(one("Deployment", "vq-worker"))
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 60
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    service = copy.deepcopy(one("Service", "vq-web"))
    service["spec"]["ports"][0]["port"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, K8S_VERSION, strict=True)


def test_the_keda_objects_use_only_fields_keda_documents() -> None:
    jsonschema.Draft202012Validator.check_schema(KEDA_SCHEMA)
    keda = [o for o in objects() if o["kind"] in KEDA_KINDS]
    assert sorted(o["kind"] for o in keda) == sorted(KEDA_KINDS)
    for obj in keda:
        assert keda_errors(obj) == [], obj["kind"]


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda t: t["metadata"].update(targetQueryValue=10), "is not of type 'string'"),
        (lambda t: t["metadata"].pop("query"), "'query' is a required property"),
        (lambda t: t["metadata"].update(qurey="SELECT 1"), "'qurey' was unexpected"),
        (lambda t: t.update(type="postgres"), "'postgresql' was expected"),
        (lambda t: t["metadata"].update(sslmode="on"), "is not one of"),
        (lambda t: t["metadata"].update(connectionFromEnv="VQ_DATABASE_URL"), "valid under"),
    ],
    ids=["number", "no-query", "misspelt", "trigger-type", "sslmode", "two-connections"],
)
def test_the_keda_schema_refuses_a_broken_trigger(change: Any, complaint: str) -> None:
    scaled = copy.deepcopy(one("ScaledObject", "vq-worker"))
    change(scaled["spec"]["triggers"][0])
    errors = keda_errors(scaled)
    assert any(complaint in e for e in errors), errors


# -- KEDA and vq ----------------------------------------------------------------------


def test_the_scaledobject_query_is_vqs_depth_query() -> None:
    (trigger,) = one("ScaledObject", "vq-worker")["spec"]["triggers"]
    assert trigger["type"] == "postgresql"
    assert normalised(trigger["metadata"]["query"]) == normalised(sql("ready_depth"))


def test_the_scaledobject_scales_the_worker_deployment_on_its_concurrency() -> None:
    spec = one("ScaledObject", "vq-worker")["spec"]
    target = spec["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        "vq-worker",
    )
    worker = one("Deployment", "vq-worker")
    # The autoscaler owns the count: a replicas field would undo it on every apply.
    assert "replicas" not in worker["spec"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    (trigger,) = spec["triggers"]
    concurrency = env_value(container("Deployment", "vq-worker"), "VQ_CONCURRENCY")
    assert float(trigger["metadata"]["targetQueryValue"]) == float(concurrency)


def test_the_trigger_authentication_reads_a_key_the_secret_has() -> None:
    (trigger,) = one("ScaledObject", "vq-worker")["spec"]["triggers"]
    auth = one("TriggerAuthentication", trigger["authenticationRef"]["name"])
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["key"] in one("Secret", ref["name"])["stringData"]
    assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"password"}


# -- the workloads --------------------------------------------------------------------


def test_the_worker_outlives_its_shutdown_before_the_kubelet_kills_it() -> None:
    pod = one("Deployment", "vq-worker")["spec"]["template"]["spec"]
    c = container("Deployment", "vq-worker")
    grace = float(env_value(c, "VQ_SHUTDOWN_GRACE"))
    db_timeout = float(env_value(c, "VQ_SHUTDOWN_DB_TIMEOUT"))
    # vq_core/worker/process.py: a worker returns within grace + ABORT_WAIT + db timeout.
    needed = grace + ABORT_WAIT + db_timeout
    assert pod["terminationGracePeriodSeconds"] >= needed + 10, (pod, needed)
    # A worker told to stop may finish a render of the default timeout.
    assert grace >= Settings.model_fields["default_timeout"].default


def test_the_web_probes_are_the_apis_health_routes() -> None:
    from vq_ui.api.jobs import router

    routes = {getattr(r, "path", None) for r in router.routes}
    c = container("Deployment", "vq-web")
    assert c["args"] == ["run", "--no-worker"] and c["image"] == "vq:web"
    assert c["readinessProbe"]["httpGet"]["path"] == "/api/v1/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/api/v1/healthz"
    assert c["startupProbe"]["httpGet"]["path"] == "/api/v1/healthz"
    assert {"/api/v1/readyz", "/api/v1/healthz"} <= routes
    (port,) = c["ports"]
    probe_ports = {c[p]["httpGet"]["port"] for p in ("readinessProbe", "livenessProbe")}
    assert probe_ports == {port["name"]}
    assert int(env_value(c, "VQ_PORT")) == port["containerPort"]
    # readyz waits 5 s for the database, then answers 503 itself: the probe waits longer.
    assert c["readinessProbe"]["timeoutSeconds"] > 5
    service = one("Service", "vq-web")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    pod_labels = one("Deployment", "vq-web")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_the_migration_job_runs_vq_migrate_on_the_worker_image() -> None:
    c = container("Job", "vq-migrate")
    assert c["command"] + c["args"] == ["vq", "migrate"]
    assert c["image"] == "vq:worker"
    assert one("Job", "vq-migrate")["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    worker = container("Deployment", "vq-worker")
    assert worker["command"] + worker["args"] == ["vq", "worker"]
    assert worker["image"] == "vq:worker" and "ports" not in worker
    assert not [o for o in objects() if o["kind"] == "Service" and "worker" in str(o)]


def test_every_pod_runs_as_non_root_with_resources_and_no_privileges() -> None:
    for where, pod in pod_specs():
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] > 0, where
        assert pod["automountServiceAccountToken"] is False, where
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= c["resources"]["requests"].keys(), where
            assert "memory" in c["resources"]["limits"], where
            # Placeholders without a registry host: kustomize's `images` renames them.
            assert c["image"] in {"vq:web", "vq:worker"}, where
            mounts = {m["mountPath"] for m in c["volumeMounts"]}
            assert {"/tmp", "/var/lib/vq"} <= mounts, where


def test_each_disruption_budget_selects_a_deployments_pods() -> None:
    deployments = {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"]
        for o in objects()
        if o["kind"] == "Deployment"
    }
    budgets = [o for o in objects() if o["kind"] == "PodDisruptionBudget"]
    covered = set()
    for pdb in budgets:
        selector = pdb["spec"]["selector"]["matchLabels"]
        matched = [n for n, labels in deployments.items() if selector.items() <= labels.items()]
        assert len(matched) == 1, pdb["metadata"]["name"]
        covered.update(matched)
    assert covered == {"vq-web", "vq-worker"}
    # Web keeps a pod while one drains: more replicas than the budget's minimum.
    web = one("PodDisruptionBudget", "vq-web")["spec"]["minAvailable"]
    assert one("Deployment", "vq-web")["spec"]["replicas"] > web


def test_each_containers_environment_is_valid_vq_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = one("ConfigMap", "vq-config")["data"]
    secrets = one("Secret", "vq-secrets")["stringData"]
    for where, pod in pod_specs():
        for c in pod["containers"]:
            env = {}
            for source in c.get("envFrom", []):
                assert source["configMapRef"]["name"] == "vq-config", where
                env.update(config)
            for e in c.get("env", []):
                if "value" in e:
                    env[e["name"]] = e["value"]
                else:
                    ref = e["valueFrom"]["secretKeyRef"]
                    assert ref["name"] == "vq-secrets", where
                    env[e["name"]] = secrets[ref["key"]]
            assert env and all(k.startswith("VQ_") for k in env), (where, env)
            # The environment source ignores names it does not know: check them here.
            unknown = [k for k in env if not is_setting(k)]
            assert not unknown, (where, unknown)
            for key in [k for k in os.environ if k.startswith("VQ_")]:
                monkeypatch.delenv(key)
            monkeypatch.setenv("VQ_CONFIG", "/nonexistent/vq.toml")
            for key, value in env.items():
                monkeypatch.setenv(key, value)
            # extra="forbid": an unknown VQ_ name or a bad value is an error here.
            settings = Settings()
            assert settings.database_url == secrets["database-url"], where
            assert str(settings.data_dir) == config["VQ_DATA_DIR"], where
