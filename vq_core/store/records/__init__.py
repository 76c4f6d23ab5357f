"""The records the store's less used methods return (accounts, sessions, alerts, alert
sinks, completion callbacks, the event stream, the first version's import, bulk actions,
configuration changes and service caps), one module per concern, made when first used.

Making a dataclass costs about a millisecond (it compiles each of its methods), and these
two dozen are no part of ``vq submit``, ``vq jobs show`` or ``vq stats``, which import
the whole store. Each concern's module exports its records as before
(``from vq_core.store.accounts import UserRecord``), importing them on first use.
"""

from __future__ import annotations

import importlib
from typing import Any


def export(concern: str, module: str, name: str) -> Any:
    """``name`` of ``vq_core.store.records.CONCERN``, for ``module.__getattr__``: one of
    its records (or a constant they share); ``AttributeError`` for any other name."""
    # Python asks modules for dunders (``__path__`` on every ``from M import X``): no
    # record is one, and answering them must not make the records.
    if not name.startswith("__"):
        records = importlib.import_module(f"{__name__}.{concern}")
        if name in records.__all__:
            return getattr(records, name)
    raise AttributeError(f"module {module!r} has no attribute {name!r}")
