"""The ``vq`` command line: commands (``main``) and their human output (``output``)."""

import os

# pydantic scans every installed distribution's entry points for its plugins when the
# first model is built: 6 to 10 ms of every ``vq`` command (docs/performance.md, "The
# CLI"), and vq's settings and validation use none. An explicit value, even an empty
# one (every plugin on), is the user's and stays.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
