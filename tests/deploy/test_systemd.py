"""deploy/systemd/: the units pass ``systemd-analyze verify`` and its offline security
review (when systemd-analyze is installed), and, parsed, say what docs/deployment.md
promises: migrations once before the rest, a dedicated user, restart on failure, the
environment file, hardening, and a stop timeout above the worker's drain."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vq_core.config import Settings

SYSTEMD = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
UNITS = ["vq-migrate.service", "vq-web.service", "vq-worker@.service"]
ANALYZE = shutil.which("systemd-analyze")
VQ = Path(sys.executable).parent / "vq"
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "ReadWritePaths": "/var/lib/vq",
    "CapabilityBoundingSet": "",
}


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read_string((SYSTEMD / name).read_text(encoding="utf-8"))
    return parser


def _runnable_copies(tmp_path: Path) -> list[Path]:
    """The units with ExecStart pointing at this venv's vq (verify checks it exists)."""
    copies = []
    for name in UNITS:
        text = (SYSTEMD / name).read_text(encoding="utf-8").replace("/opt/vq/bin/vq", str(VQ))
        copy = tmp_path / name
        copy.write_text(text, encoding="utf-8")
        copies.append(copy)
    return copies


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    assert ANALYZE is not None
    copies = _runnable_copies(tmp_path)
    done = subprocess.run(
        [ANALYZE, "verify", "--man=no", *map(str, copies)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify exits 0 on warnings (an unknown key, a bad value): any output is a finding.
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stderr
    bad = tmp_path / "bad.service"
    bad.write_text("[Service]\nExecStart=/bin/true\nTimeoutStopSek=60s\n", encoding="utf-8")
    caught = subprocess.run(
        [ANALYZE, "verify", "--man=no", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "TimeoutStopSek" in caught.stderr  # the check above can fail


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("name", UNITS)
def test_the_offline_security_review_rates_each_unit_ok(name: str, tmp_path: Path) -> None:
    assert ANALYZE is not None
    copy = {p.name: p for p in _runnable_copies(tmp_path)}[name]
    done = subprocess.run(
        [ANALYZE, "security", "--offline=yes", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    level = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", done.stdout)
    assert level, done.stdout + done.stderr
    assert float(level.group(1)) <= 4.0, done.stdout  # "OK"; a default unit rates 9.6


@pytest.mark.parametrize("name", UNITS)
def test_each_unit_runs_vq_as_its_own_user_hardened(name: str) -> None:
    service = unit(name)["Service"]
    assert service["User"] == service["Group"] == "vq"
    assert service["EnvironmentFile"] == "/etc/vq/vq.env"
    assert service["ExecStart"].startswith("/opt/vq/bin/vq ")
    for key, value in HARDENING.items():
        assert service.get(key) == value, f"{name}: {key}={service.get(key)!r}"


def test_migrations_run_once_before_web_and_workers() -> None:
    migrate = unit("vq-migrate.service")["Service"]
    assert migrate["Type"] == "oneshot" and migrate["ExecStart"] == "/opt/vq/bin/vq migrate"
    for name in ("vq-web.service", "vq-worker@.service"):
        parsed = unit(name)
        assert "vq-migrate.service" in parsed["Unit"]["Requires"].split()
        assert "vq-migrate.service" in parsed["Unit"]["After"].split()
        assert parsed["Service"]["Restart"] == "on-failure"
    assert unit("vq-web.service")["Service"]["ExecStart"] == "/opt/vq/bin/vq run --no-worker"
    assert unit("vq-worker@.service")["Service"]["ExecStart"] == "/opt/vq/bin/vq worker"


def _env_example() -> dict[str, str]:
    lines = (SYSTEMD / "vq.env.example").read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, value
    return float(match.group(1)) * (60 if match.group(2) == "min" else 1)


def test_the_worker_stop_timeout_is_above_its_drain() -> None:
    env = _env_example()
    fields = Settings.model_fields
    grace = float(env.get("VQ_SHUTDOWN_GRACE", fields["shutdown_grace"].default))
    db = float(env.get("VQ_SHUTDOWN_DB_TIMEOUT", fields["shutdown_db_timeout"].default))
    worker = unit("vq-worker@.service")["Service"]
    # A worker exits within shutdown_grace + 10 s + shutdown_db_timeout of SIGTERM.
    assert _seconds(worker["TimeoutStopSec"]) > grace + 10 + db
    assert worker["KillSignal"] == "SIGTERM"
