"""The worker: ``process.Worker`` wires claiming, running, completing, notifications,
upkeep and health checks; each lives in a module of its own here."""
