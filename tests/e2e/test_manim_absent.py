"""The reference Manim service when Manim cannot be imported at all (issue 15): `vq services
serve --manim` refuses, and without the flag the Manim route renders its PyAV fallback and
says why. Real processes, an environment whose Python cannot import Manim."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import httpx
import pytest


@pytest.fixture
def no_manim(tmp_path: Path) -> dict[str, str]:
    """An environment whose Python cannot import Manim: ``sys.modules["manim"] = None`` in
    a sitecustomize.py, so ``importlib.util.find_spec("manim")`` is None and ``import
    manim`` raises ModuleNotFoundError, as when the extra is not installed."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['manim'] = None\n")
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "VQ_CONFIG": "/nonexistent/vq.toml"}


VQ = str(Path(sys.executable).with_name("vq"))


def test_the_environment_really_lacks_manim(no_manim: dict[str, str]) -> None:
    probe = ("import importlib.util, sys\n"
             "assert importlib.util.find_spec('manim') is None\n"
             "try:\n    import manim\nexcept ModuleNotFoundError:\n    sys.exit(0)\n"
             "sys.exit(1)\n")
    assert subprocess.run([sys.executable, "-c", probe], env=no_manim).returncode == 0


def test_serve_manim_refuses_without_manim(no_manim: dict[str, str], tmp_path: Path) -> None:
    proc = subprocess.run(
        [VQ, "services", "serve", "--manim", "--host", "127.0.0.1", "--port", "0",
         "--media-dir", str(tmp_path / "m")],
        env=no_manim, capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--manim: Manim is not installed" in proc.stderr
    assert not (tmp_path / "m").exists()  # stopped before doing anything


def test_manim_service_falls_back_to_pyav_without_manim(
    no_manim: dict[str, str], tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        [VQ, "services", "serve", "--host", "127.0.0.1", "--port", "0",
         "--media-dir", str(tmp_path / "m"), "--width", "96", "--height", "64", "--fps", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=no_manim,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(5)]
        assert lines[0].startswith("reference services on http://127.0.0.1:"), lines
        assert "manim renderer           = PyAV clip" in lines[4], lines
        url = lines[0].split()[3]
        assert httpx.get(f"{url}/manim/health", timeout=30).status_code == 200
        answer = httpx.post(f"{url}/manim/render",
                            json={"content": "Growing bar", "scene_type": "auto"}, timeout=60)
        assert answer.status_code == 200, answer.text
        data = answer.json()
        assert data["renderer"] == "pyav"
        assert data["fallback"] == "Manim is not installed"
        clip = tmp_path / "m" / data["video_url"].rsplit("/", 1)[1]
        with av.open(str(clip)) as container:
            [stream] = container.streams.video
            assert (stream.width, stream.height) == (96, 64)
    finally:
        proc.terminate()
        proc.communicate(timeout=20)

