"""Alerting: the rules (pure), the engine that evaluates them on a schedule, the alert model."""
