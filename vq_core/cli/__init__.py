"""The ``vq`` command line: commands (``main``) and their human output (``output``)."""
