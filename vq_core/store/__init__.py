"""The store: one method per query, returning models. The only door to the database.

The worker, the CLI, the API and the admin page all call these methods, so a
state change is written the same way (with its ``job_events`` row, in the same
statement) whoever asks for it. ``Store`` is composed in ``store.py`` from one
module per concern (``jobs``, ``listing``, ``workers``, ``queue_config``,
``service_health``, ``stats``, ``accounts``, ``sessions``, ``alerts``); the records
those return live in their modules.
"""

from vq_core.store.jobs import Enqueued
from vq_core.store.listing import list_query
from vq_core.store.store import Store

__all__ = ["Enqueued", "Store", "list_query"]
