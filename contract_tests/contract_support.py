"""Names shared by the contract tests and their conftest (not a conftest import: the
``tests`` folder has a conftest module of its own)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes"
SERVICES = ("orchestrator", "manim", "revideo")
ENDPOINTS = {"orchestrator": "/render", "manim": "/render", "revideo": "/compose"}
SCRUBBED = ["authorization", "x-api-key"]
