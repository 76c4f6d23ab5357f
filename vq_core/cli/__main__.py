"""``python -m vq_core.cli``: the ``vq`` command without its console script."""

from vq_core.cli.main import main

main()
