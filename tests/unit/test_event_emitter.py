"""The worker's job events reach every observer as a pluggy hook call would."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Generator
from typing import Any

import pluggy
import pytest

from vq_core import hookimpl, hookspecs
from vq_core.worker.events import EventEmitter

JOB = uuid.UUID(int=7)


def _manager(*plugins: object) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("vq")
    pm.add_hookspecs(hookspecs)
    for plugin in plugins:
        pm.register(plugin)
    return pm


class Recorder:
    def __init__(self, name: str, calls: list[tuple[str, str]]) -> None:
        self.name, self.calls = name, calls

    @hookimpl
    def vq_job_event(self, job_id: uuid.UUID, event: str, details: dict[str, Any]) -> None:
        assert job_id == JOB and details["worker_id"] == "w1"
        self.calls.append((self.name, event))


class EventOnly:
    """An observer that names only the argument it wants, as pluggy allows."""

    def __init__(self) -> None:
        self.events: list[str] = []

    @hookimpl
    def vq_job_event(self, event: str) -> None:
        self.events.append(event)


class Broken:
    @hookimpl
    def vq_job_event(self, event: str) -> None:
        raise RuntimeError("observer bug")


class Wrapper:
    def __init__(self, calls: list[tuple[str, str]]) -> None:
        self.calls = calls

    @hookimpl(wrapper=True)
    def vq_job_event(self, event: str) -> Generator[None, None, None]:
        self.calls.append(("wrapper", event))
        return (yield)


def test_observers_are_called_in_pluggys_order_with_the_arguments_they_name() -> None:
    calls: list[tuple[str, str]] = []
    only = EventOnly()
    pm = _manager(Recorder("first", calls), Recorder("second", calls), only)
    pm.hook.vq_job_event(job_id=JOB, event="claimed", details={"worker_id": "w1"})
    through_pluggy, calls[:] = list(calls), []
    EventEmitter(pm, "w1").emit(JOB, "claimed", {})
    assert calls == through_pluggy == [("second", "claimed"), ("first", "claimed")]
    assert only.events == ["claimed", "claimed"]


def test_a_plugin_registered_after_the_emitter_joins() -> None:
    calls: list[tuple[str, str]] = []
    pm = _manager(Recorder("early", calls))
    emitter = EventEmitter(pm, "w1")
    emitter.emit(JOB, "claimed", {})
    pm.register(Recorder("late", calls))
    emitter.emit(JOB, "completed", {})
    assert calls == [("early", "claimed"), ("late", "completed"), ("early", "completed")]


def test_a_failing_observer_is_logged_and_the_others_still_see_the_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[tuple[str, str]] = []
    pm = _manager(Recorder("kept", calls), Broken())
    with caplog.at_level(logging.ERROR, logger="vq.job"):
        EventEmitter(pm, "w1").emit(JOB, "failed", {})
    assert calls == [("kept", "failed")]
    assert "observer bug" in caplog.text and "failed" in caplog.text


def test_a_hook_wrapper_gets_every_event_through_pluggy() -> None:
    calls: list[tuple[str, str]] = []
    pm = _manager(Recorder("plain", calls), Wrapper(calls))
    EventEmitter(pm, "w1").emit(JOB, "progress", {})
    assert calls == [("wrapper", "progress"), ("plain", "progress")]
