"""Renders a reference Manim scene in a subprocess with a time limit.

The server process never imports Manim: ``manim_installed()`` only looks for it, and
``render_manim_clip`` runs ``python -m vq_plugins.reference.manim_scenes`` in a session of
its own, so a scene that overruns is killed with everything it started and the server
stays responsive.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import sys
import tempfile
from pathlib import Path
from weakref import WeakKeyDictionary

from vq_plugins.services.doubt_kinds import SceneKind

SCENES_MODULE = "vq_plugins.reference.manim_scenes"
STDERR_TAIL = 800
_gates: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = WeakKeyDictionary()


class ManimError(Exception):
    """A Manim render did not produce a clip."""


class ManimTimeout(ManimError):
    """The render ran longer than its time limit and was killed."""

    def __init__(self, time_limit: float) -> None:
        super().__init__(f"manim render exceeded {time_limit:g} s")
        self.time_limit = time_limit


class ManimFailed(ManimError):
    """The render subprocess exited with a non-zero status."""

    def __init__(self, returncode: int, stderr_tail: str) -> None:
        super().__init__(f"manim render failed (exit status {returncode}): {stderr_tail}")
        self.returncode, self.stderr_tail = returncode, stderr_tail


def manim_installed() -> bool:
    """Whether Manim can be imported here (looked up, not imported: it is heavy)."""
    return importlib.util.find_spec("manim") is not None


def _gate(limit: int) -> asyncio.Semaphore:
    """This event loop's limit on renders at once (each is a process of its own)."""
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(limit)
    return gate


def _kill_group(process: asyncio.subprocess.Process) -> None:
    # The render runs in its own session, so its id is its process group's.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def render_manim_clip(
    kind: SceneKind,
    content: str,
    out_path: Path,
    *,
    width: int,
    height: int,
    fps: int,
    seconds: float,
    time_limit: float,
    max_running: int = 2,
) -> Path:
    """Render the ``kind`` scene of ``content`` to ``out_path`` (an MP4, written atomically).

    :param time_limit: seconds the subprocess may run (waiting for a free slot not counted).
    :param max_running: renders at once on this event loop; the others wait.
    :raises ManimTimeout: the limit passed; the subprocess and its group were killed.
    :raises ManimFailed: the subprocess exited non-zero (its stderr's tail is kept).
    """
    if not time_limit > 0:
        raise ValueError(f"time_limit must be positive, got {time_limit}")
    async with _gate(max(1, max_running)):
        with tempfile.TemporaryDirectory(prefix="vq-manim-") as scratch:
            args = [
                "--kind", kind, "--content", content, "--out", str(out_path),
                "--width", str(width), "--height", str(height), "--fps", str(fps),
                "--seconds", str(seconds), "--media-dir", scratch,
            ]
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", SCENES_MODULE, *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
            assert process.stderr is not None
            stderr = asyncio.ensure_future(process.stderr.read())
            timed_out = False
            try:
                await asyncio.wait_for(process.wait(), time_limit)
            except TimeoutError:
                timed_out = True
            finally:
                # Also on cancellation (the server stopping): nothing outlives the request.
                if process.returncode is None:
                    _kill_group(process)
                    await process.wait()
                tail = (await stderr).decode("utf-8", errors="replace")[-STDERR_TAIL:].strip()
                # A killed render may leave its half-copied file beside the target.
                out_path.with_name(f".{out_path.name}.{process.pid}.part").unlink(missing_ok=True)
    if timed_out:
        raise ManimTimeout(time_limit)
    code = process.returncode
    if code != 0:
        raise ManimFailed(-1 if code is None else code, tail or "no error output")
    return out_path
