"""Alert sinks: where a firing or resolved alert is sent (log, webhook, e-mail)."""
