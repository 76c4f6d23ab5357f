"""The built-in plugins, registered through the ``vq`` entry-point group like any other."""
