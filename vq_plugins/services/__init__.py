"""Video services: the clients and renderers that turn a job into a video."""
