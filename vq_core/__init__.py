"""vq: a PostgreSQL-backed job queue for long-running video generation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    import pluggy

    #: Marks a plugin's hook implementations: ``@hookimpl def vq_register_services(...)``.
    hookimpl: pluggy.HookimplMarker


def __getattr__(name: str) -> Any:
    # ``hookimpl`` is made on first use: importing pluggy here would make every import of
    # vq_core pay for it, and ``vq submit``, ``vq jobs show`` and ``vq stats`` load no
    # plugin. ``from vq_core import hookimpl`` comes here, once; then the module has it.
    if name == "hookimpl":
        import pluggy

        marker = pluggy.HookimplMarker("vq")
        globals()["hookimpl"] = marker
        return marker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__", "hookimpl"]
