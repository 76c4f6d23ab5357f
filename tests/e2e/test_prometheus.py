"""A real Prometheus (Debian's package) scraping a real ``vq run`` with a viewer token,
loading deploy/prometheus/vq-rules.yml: 25 jobs held in a paused type make the depth
alert fire; resumed and drained, it clears. The dashboard's expressions evaluate on
the same Prometheus, and every vq metric the rules and the dashboard name is in the
real scrape.

The rules are the deploy file's, with one change: each alert's ``for:`` is cut to a
few seconds (in a copy), so that the test waits seconds rather than the minutes an
operator wants before being called. Expressions, labels and annotations are the file's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support.helpers import eventually
from support.processes import free_port, wait_ready
from support.prometheus import (
    RULES,
    dashboard,
    dashboard_exprs,
    exposed_names,
    rules,
    tool,
    vq_names,
)

from vq_core.models import Actor, JobStatus, NewJob
from vq_core.store import Store
from vq_core.validation import QueueConfigPatch
from vq_ui.auth.users import create_token

pytestmark = pytest.mark.slow
VQ = [sys.executable, "-m", "vq_core.cli"]
SHORT_FOR = "3s"
HELD = 25  # above VQQueueDepthHigh's 20
OPS = Actor("prometheus-test", "api")


def write_prometheus_config(tmp_path: Path, vq_port: int, token: str) -> Path:
    """The test's Prometheus: 1 s scrapes and rule evaluations, the deploy rules with
    short ``for:`` durations, vq scraped with a viewer token as in the example config."""
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for group in groups["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = SHORT_FOR
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(groups), encoding="utf-8")
    (tmp_path / "token").write_text(token, encoding="utf-8")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules.yml")],
        "scrape_configs": [
            {
                "job_name": "vq",
                "metrics_path": "/api/v1/metrics",
                "authorization": {"credentials_file": str(tmp_path / "token")},
                "static_configs": [{"targets": [f"127.0.0.1:{vq_port}"]}],
            }
        ],
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def start_prometheus(config: Path, port: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    """Prometheus on 127.0.0.1:``port``, its data and log in ``tmp_path``."""
    with (tmp_path / "prometheus.log").open("wb") as out:
        return subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=info",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def start_vq_run(dsn: str, port: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    """``vq run`` on the test's database: a worker (the built-in noop service) and the API."""
    env = {
        **os.environ,
        "VQ_DATABASE_URL": dsn,
        "VQ_DATA_DIR": str(tmp_path / "data"),
        "VQ_PORT": str(port),
        "VQ_POLL_INTERVAL": "0.5",
        "VQ_HEARTBEAT_INTERVAL": "0.5",
    }
    with (tmp_path / "vq-run.log").open("wb") as out:
        return subprocess.Popen([*VQ, "run"], env=env, stdout=out, stderr=subprocess.STDOUT)


class PrometheusAPI:
    """The few calls of Prometheus' HTTP API the test makes."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def query(self, expr: str) -> dict[str, Any]:
        """An instant query's whole answer (status, data or error)."""
        answer: dict[str, Any] = (
            await self.client.get("/api/v1/query", params={"query": expr})
        ).json()
        return answer

    async def alerts(self, name: str) -> list[dict[str, Any]]:
        """The active (pending or firing) alerts named ``name``."""
        data = (await self.client.get("/api/v1/alerts")).json()["data"]["alerts"]
        return [a for a in data if a["labels"]["alertname"] == name]


async def test_depth_alert_fires_for_a_held_type_and_clears_after_the_drain(
    store: Store, dsn: str, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    await store.update_queue_config("noop", QueueConfigPatch(paused=True), OPS, 600.0)
    await store.enqueue_many([NewJob("noop", {"i": i}) for i in range(HELD)])
    token = (await create_token(store, "prometheus", "viewer")).token
    vq_port, prom_port = free_port(), free_port()
    vq = start_vq_run(dsn, vq_port, tmp_path)
    procs.append(vq)
    wait_ready(f"http://127.0.0.1:{vq_port}/api/v1/readyz", vq, tmp_path / "vq-run.log")
    prometheus = start_prometheus(
        write_prometheus_config(tmp_path, vq_port, token), prom_port, tmp_path
    )
    procs.append(prometheus)
    wait_ready(f"http://127.0.0.1:{prom_port}/-/ready", prometheus, tmp_path / "prometheus.log")

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{prom_port}", timeout=5) as client:
        api = PrometheusAPI(client)

        async def scraped() -> bool:
            answer = await api.query('up{job="vq"}')
            return [s["value"][1] for s in answer["data"]["result"]] == ["1"]

        await eventually(scraped, timeout=30, interval=0.25)

        async def depth_firing() -> list[dict[str, Any]]:
            return [
                a
                for a in await api.alerts("VQQueueDepthHigh")
                if a["state"] == "firing" and a["labels"]["job_type"] == "noop"
            ]

        (alert,) = await eventually(depth_firing, timeout=60, interval=0.25)
        assert alert["labels"]["severity"] == "warning"
        assert alert["annotations"]["summary"] == (
            f"{HELD} noop jobs ready in the queue (threshold 20)"
        )
        assert await api.alerts("VQMetricsDown") == []
        depth = await api.query('job_type:vq_queue_ready:max{job_type="noop"}')
        assert [s["value"][1] for s in depth["data"]["result"]] == [str(HELD)]

        # Resume: the worker of vq run drains the type.
        await store.update_queue_config("noop", QueueConfigPatch(paused=False), OPS, 600.0)

        async def drained() -> bool:
            counts = (await store.stats())["by_type"].get("noop", {})
            return bool(counts.get(JobStatus.COMPLETED.value) == HELD)

        await eventually(drained, timeout=60, interval=0.25)

        async def cleared() -> bool:
            return await api.alerts("VQQueueDepthHigh") == []

        await eventually(cleared, timeout=60, interval=0.25)

        # The counters of the drain are scraped; the dashboard's queries evaluate.
        async def counted() -> bool:
            answer = await api.query(
                'sum(vq_jobs_processed_total{job_type="noop", outcome="completed"})'
            )
            return [s["value"][1] for s in answer["data"]["result"]] == [str(HELD)]

        await eventually(counted, timeout=30, interval=0.25)
        for title, expr in dashboard_exprs(dashboard()):
            answer = await api.query(expr)
            assert answer["status"] == "success", f"{title}: {expr}: {answer}"

        async def recorded() -> bool:  # a rate needs two scrapes of the counter
            answer = await api.query("job_type:vq_jobs_completed:rate5m")
            return [s["metric"]["job_type"] for s in answer["data"]["result"]] == ["noop"]

        await eventually(recorded, timeout=30, interval=0.25)

    # Every vq metric the rules and the dashboard select is in the real exposition,
    # which answers the scrape's token and no one without it.
    url = f"http://127.0.0.1:{vq_port}/api/v1/metrics"
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(url)).status_code == 401
        scrape = await client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert scrape.status_code == 200
    exposed = exposed_names(scrape.text)
    used = set().union(
        *(vq_names(rule["expr"]) for rule in rules()),
        *(vq_names(expr) for _, expr in dashboard_exprs(dashboard())),
    )
    assert used <= exposed, used - exposed

    for proc in (prometheus, vq):
        proc.send_signal(signal.SIGTERM)
    assert vq.wait(timeout=30) == 0, (tmp_path / "vq-run.log").read_text()
    assert prometheus.wait(timeout=30) == 0, (tmp_path / "prometheus.log").read_text()
