"""vq: a PostgreSQL-backed job queue for long-running video generation."""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Marks a plugin's hook implementations: ``@hookimpl def vq_register_services(...)``.
hookimpl = pluggy.HookimplMarker("vq")

__all__ = ["__version__", "hookimpl"]
