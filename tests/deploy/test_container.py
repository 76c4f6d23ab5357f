"""The container definition (deploy/docker/): hadolint finds nothing, the worker target
leaves NiceGUI out, both targets run as a non-root user with a health check, the base
image is a build argument, .dockerignore lets in what the image copies, and the health
check script tells a live process from a dead one."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def stages(text: str) -> dict[str, list[tuple[str, str]]]:
    """The instructions of each named stage (``FROM ... AS name``)."""
    out: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for word, rest in instructions(text):
        if word == "FROM":
            name = rest.split()[-1] if " AS " in rest.upper() else rest
            current = out.setdefault(name, [])
        if current is not None:
            current.append((word, rest))
    return out


def stage_chain(all_stages: dict[str, list[tuple[str, str]]], name: str) -> list[tuple[str, str]]:
    """A stage's instructions preceded by those of the stages it is built ``FROM``."""
    own = all_stages[name]
    parent = own[0][1].split()[0]
    return (stage_chain(all_stages, parent) if parent in all_stages else []) + own


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HADOLINT), "--no-color", "--config", str(DOCKER / ".hadolint.yaml"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hadolint_finds_nothing() -> None:
    done = hadolint(DOCKERFILE)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_hadolint_with_this_config_does_find_problems(tmp_path: Path) -> None:
    """The clean result above means something: the same configuration flags a bad file."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install nicegui\nUSER vq\n", encoding="utf-8")
    done = hadolint(bad)
    assert done.returncode != 0
    assert "DL3006" in done.stdout and "DL3013" in done.stdout, done.stdout


def test_no_rule_is_ignored_without_a_reason() -> None:
    config = (DOCKER / ".hadolint.yaml").read_text(encoding="utf-8")
    ignored = re.search(r"^ignored:(.*(?:\n\s+- .*)*)", config, re.M)
    assert ignored is not None
    rules = re.findall(r"DL\d{4}|SC\d{4}", ignored.group(1))
    for rule in rules:  # each ignored rule is named in a comment that says why
        assert re.search(rf"^#.*{rule}", config, re.M), f"{rule} is ignored without a reason"


def test_the_base_image_is_a_build_argument_of_every_stage() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    steps = instructions(text)
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")
    froms = [rest.split()[0] for word, rest in steps if word == "FROM"]
    named = set(stages(text))
    assert all(base == "${BASE_IMAGE}" or base in named for base in froms), froms
    assert {"builder", "web", "worker"} <= named


def _extras(requirement: str) -> set[str]:
    match = re.fullmatch(r'"?vq\[([^\]]+)\]"?', requirement)
    assert match, requirement
    return {e.strip() for e in match.group(1).split(",")}


def _installed_extras(stage: list[tuple[str, str]]) -> set[str]:
    """The vq extras a stage's ``pip install`` names, ``${EXTRAS}`` from its ARG."""
    args = {
        rest.split("=", 1)[0]: rest.split("=", 1)[1]
        for word, rest in stage
        if word == "ARG" and "=" in rest
    }
    extras: set[str] = set()
    for word, rest in stage:
        if word == "RUN" and "pip install" in rest:
            for token in shlex.split(rest):
                if token.startswith("vq["):
                    extras |= _extras(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], token))
    return extras


def _requirements(extras: set[str]) -> set[str]:
    """The distribution names vq with ``extras`` installs (its own extras resolved)."""
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    names: set[str] = set()
    todo, seen = list(extras), set()
    requirements = list(project["dependencies"])
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for req in optional[extra]:
            if req.startswith("vq["):
                todo += _extras(req)
            else:
                requirements.append(req)
    for req in requirements:
        names.add(re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower())
    return names


def test_the_worker_target_leaves_out_nicegui_and_the_browser_stack() -> None:
    all_stages = stages(DOCKERFILE.read_text(encoding="utf-8"))
    worker = _installed_extras(stage_chain(all_stages, "worker"))
    web = _installed_extras(stage_chain(all_stages, "web"))
    assert worker and web
    worker_needs = _requirements(worker)
    assert not {"nicegui", "fastapi-offline", "selenium"} & worker_needs, worker_needs
    assert {"av", "asyncpg"} <= worker_needs  # it still renders (the local renderer)
    assert "nicegui" in _requirements(web)


@pytest.mark.parametrize("target", ["web", "worker"])
def test_each_target_runs_as_a_numeric_non_root_user_with_a_health_check(target: str) -> None:
    chain = stage_chain(stages(DOCKERFILE.read_text(encoding="utf-8")), target)
    users = [rest for word, rest in chain if word == "USER"]
    assert users, f"{target} runs as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, users[-1]
    checks = [rest for word, rest in chain if word == "HEALTHCHECK"]
    assert checks and f'"/opt/vq/healthcheck.py", "{target}"' in checks[-1], checks
    cmd = [rest for word, rest in chain if word == "CMD"][-1]
    expected = '["vq", "run", "--no-worker"]' if target == "web" else '["vq", "worker"]'
    assert cmd == expected


def _ignored(patterns: list[str], path: str) -> bool:
    """Whether .dockerignore's patterns (the last match wins, ``!`` re-includes)
    leave ``path`` (or one of its parents) out of the build context."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    out = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").strip("/")
        regex = re.escape(glob).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*")
        if any(re.fullmatch(regex, c) for c in candidates):
            out = not negate
    return out


def test_dockerignore_lets_in_what_the_image_copies_and_nothing_else() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    copied: list[str] = []
    for word, rest in instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if word == "COPY" and "--from" not in rest:
            copied += rest.split()[:-1]
    assert "deploy/docker/healthcheck.py" in copied
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not _ignored(patterns, source), f".dockerignore leaves out {source}"
    for private in (".venv/bin/python", "tests/conftest.py", ".git/HEAD", "vq.toml"):
        assert _ignored(patterns, private), f".dockerignore lets in {private}"
    assert _ignored(patterns, "vq_core/__pycache__/config.cpython-311.pyc")


# -- deploy/docker/healthcheck.py ------------------------------------------------------------

SCRIPT = DOCKER / "healthcheck.py"


def check(*args: str, port: int | None = None) -> int:
    env = {"PATH": "/usr/bin:/bin"} | ({"VQ_PORT": str(port)} if port else {})
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, timeout=30, check=False
    ).returncode


class _Healthz(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/api/v1/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def healthz() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_web_check_passes_on_healthz_200_and_fails_otherwise(healthz: HTTPServer) -> None:
    port = healthz.server_address[1]
    assert check("web", port=port) == 0
    _Healthz.status = 503
    try:
        assert check("web", port=port) == 1
    finally:
        _Healthz.status = 200
    healthz.shutdown()
    healthz.server_close()
    assert check("web", port=port) == 1  # nothing listens


def _soon(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` (each call runs the check as a process) until true or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
    return False


def test_worker_check_tells_a_running_process_from_a_dead_or_stopped_one() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    pid = str(proc.pid)
    try:
        assert check("worker", pid) == 0
        proc.send_signal(signal.SIGSTOP)  # a frozen worker
        assert _soon(lambda: check("worker", pid) == 1)
        proc.send_signal(signal.SIGCONT)
        assert _soon(lambda: check("worker", pid) == 0)
    finally:
        proc.kill()
    assert _soon(lambda: check("worker", pid) == 1)  # killed, not yet reaped: a zombie
    proc.wait(timeout=10)
    assert check("worker", pid) == 1  # gone
    assert check("nonsense") == 2
