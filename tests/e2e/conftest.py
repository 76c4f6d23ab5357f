"""Fixtures of the process tests."""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_SCRATCH: list[Path] = []


@atexit.register
def _sweep_scratch() -> None:
    """Remove the scratch directories once more, after pgserver's exit handlers.

    Those handlers (registered later, so run earlier) take pgserver's lock file again,
    in the data directory of the test that configured it last.
    """
    for path in _SCRATCH:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def embedded_tmp() -> Iterator[Path]:
    """A scratch directory for embedded servers, outside pytest's base temp directory.

    Under root the embedded server runs as pgserver's system user, which must traverse
    every parent of its data. pytest makes its base (``/tmp/pytest-of-root``) private again
    whenever a session starts, so a concurrent session would lock the server out mid-test.
    """
    path = Path(tempfile.mkdtemp(prefix="vq-embedded-"))
    _SCRATCH.append(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The processes a test starts (it appends them): killed at its end if still running."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)
