"""Render-time benchmark: how long a 60-second narrated video takes on this machine.

Two renderers, each at 640x360 and 24 fps, each video narrated (question and
explanation) and captioned:
- the local renderer (`render_engine.render_explainer`, what `vq run` uses), once per
  kind of scene (plot, steps, diagram);
- the reference Manim + Revideo pipeline through a real reference server on loopback:
  `POST /manim/render` (a Manim CE scene when Manim is installed, else the PyAV clip),
  then `POST /revideo/compose` of intro 5 s + the clip with a narration over it, held
  to 52 s + outro 3 s: 60 s in all.

Wall and CPU time of this process (Manim runs in a subprocess: its CPU time shows in
`children_cpu_s`). Prints one JSON document.

Usage: python load/bench_render.py [--rounds 3] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from vq_plugins.reference.app import RenderOptions
from vq_plugins.reference.manim_runner import manim_installed
from vq_plugins.reference.reference_services import start_reference_server
from vq_plugins.services.doubt_kinds import SceneKind
from vq_plugins.services.render_engine import probe, render_explainer

WIDTH, HEIGHT, FPS = 640, 360, 24
EXPLANATION = (
    "Start from what the question names. Look at each part on its own, then see how the "
    "parts depend on one another. Check the idea against an example you know, and sum up "
    "what changed and why."
)
QUESTIONS: dict[SceneKind, str] = {
    "plot": "How does the graph of y = x^2 change when x doubles?",
    "steps": "Why is the sky blue?",
    "diagram": "Rayleigh scattering of sunlight by air molecules",
}


def timed(work: Callable[[], Path]) -> dict[str, float]:
    """Wall, own CPU and children's CPU seconds of ``work``, and the video's duration."""
    start_wall, start = time.perf_counter(), os.times()
    path = work()
    end = os.times()
    return {
        "wall_s": round(time.perf_counter() - start_wall, 2),
        "cpu_s": round(end.user + end.system - start.user - start.system, 2),
        "children_cpu_s": abs(round(
            end.children_user + end.children_system - start.children_user
            - start.children_system, 2
        )),
        "video_s": round(probe(path)[1], 2),
    }


def local(out: Path, kind: SceneKind, seconds: float) -> Path:
    video = render_explainer(out, f"local-{kind}", QUESTIONS[kind], explanation=EXPLANATION,
                             length=seconds, scene_type=kind, width=WIDTH,
                             height=HEIGHT, fps=FPS)
    return video.video_path


def pipeline(base: str, media: Path, kind: SceneKind, seconds: float) -> Path:
    with httpx.Client(timeout=600) as client:
        clip = client.post(f"{base}/manim/render",
                           json={"scene_type": kind, "content": QUESTIONS[kind]})
        clip.raise_for_status()
        # The narration plays over the clip (its last frame held), so it fills the middle.
        narration = max(1.0, seconds - 5 - 3)
        body = {
            "segments": [
                {"type": "intro", "duration": 5},
                {"type": "manim", "url": clip.json()["video_url"]},
                {"type": "narration", "text": f"{QUESTIONS[kind]} {EXPLANATION}",
                 "duration": narration},
                {"type": "outro", "duration": 3},
            ],
            "audio": {"voice": "default", "speed": 1.0},
        }
        composed = client.post(f"{base}/revideo/compose", json=body)
        composed.raise_for_status()
    return media / str(composed.json()["video_url"]).rpartition("/")[2]


def summary(samples: list[dict[str, float]]) -> dict[str, Any]:
    """The median of each figure over the rounds, and every round's wall time."""
    return {
        **{key: round(statistics.median(s[key] for s in samples), 2) for key in samples[0]},
        "wall_s_each": [s["wall_s"] for s in samples],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    report: dict[str, Any] = {
        "size": f"{WIDTH}x{HEIGHT}@{FPS}", "seconds": args.seconds, "rounds": args.rounds,
        "manim_installed": manim_installed(), "local": {}, "manim_revideo": {},
    }
    with tempfile.TemporaryDirectory(prefix="vq-bench-render-") as scratch:
        media = Path(scratch) / "media"
        options = RenderOptions(width=WIDTH, height=HEIGHT, fps=FPS, max_length=120.0)
        with start_reference_server(media, options=options) as server:
            for kind in QUESTIONS:
                runs_local, runs_pipe = [], []
                for _ in range(args.rounds):
                    runs_local.append(timed(partial(local, Path(scratch), kind, args.seconds)))
                    runs_pipe.append(timed(partial(pipeline, server.url, media, kind,
                                                   args.seconds)))
                report["local"][kind] = summary(runs_local)
                report["manim_revideo"][kind] = summary(runs_pipe)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
