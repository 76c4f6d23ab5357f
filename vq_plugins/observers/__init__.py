"""Observers of job events: Prometheus counters and the job log."""
