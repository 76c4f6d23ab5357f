"""A hypothesis state machine of the job lifecycle against a simple model.

Whatever sequence of submissions, claims, completions, failures, cancels, retries,
releases and lease expiries happens: no job is lost, no transition is illegal,
and the counts always add up.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from vq_core import db
from vq_core.errors import InvalidTransition
from vq_core.models import JobStatus, NewJob, Priority
from vq_core.store import Store

WORKERS = ("w1", "w2")
CANCELLABLE = {JobStatus.QUEUED, JobStatus.RUNNING}
RETRYABLE = {JobStatus.FAILED, JobStatus.CANCELLED}


class Lifecycle(RuleBasedStateMachine):
    dsn: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.model: dict[uuid.UUID, dict[str, Any]] = {}
        self.keys: dict[str, uuid.UUID] = {}
        self.store = Store(self.run(db.create_pool(self.dsn, min_size=1, max_size=2)))

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @initialize()
    def clean(self) -> None:
        self.run(self.store.pool.execute("TRUNCATE vq.jobs, vq.job_events, vq.workers CASCADE"))

    def teardown(self) -> None:
        self.run(self.store.close())
        self.loop.close()

    def _with(self, status: JobStatus, worker: str | None = None) -> list[uuid.UUID]:
        # In submission order, not sorted by id: ids are random, and hypothesis must
        # replay the same choices from the same draws.
        return [
            i
            for i, m in self.model.items()
            if m["status"] is status and (worker is None or m["worker"] == worker)
        ]

    @rule(
        n=st.integers(1, 4),
        priority=st.sampled_from(list(Priority)),
        key=st.one_of(st.none(), st.sampled_from(["a", "b", "c"])),
    )
    def submit(self, n: int, priority: Priority, key: str | None) -> None:
        jobs = [NewJob("t", {"i": i}, priority, idempotency_key=key) for i in range(n)]
        for result in self.run(self.store.enqueue_many(jobs)):
            if key is not None and key in self.keys:
                assert result.id == self.keys[key] and not result.created
                continue
            assert result.created and result.id not in self.model
            self.model[result.id] = {"status": JobStatus.QUEUED, "worker": None}
            if key is not None:
                self.keys[key] = result.id

    @rule(worker=st.sampled_from(WORKERS), limit=st.integers(1, 3))
    def claim(self, worker: str, limit: int) -> None:
        queued = self._with(JobStatus.QUEUED)
        claimed = self.run(self.store.claim(worker, {"t": "noop"}, limit, 60))
        assert len(claimed) == min(limit, len(queued))
        for job in claimed:
            assert self.model[job.id]["status"] is JobStatus.QUEUED
            self.model[job.id] = {"status": JobStatus.RUNNING, "worker": worker}

    @precondition(lambda self: self._with(JobStatus.RUNNING))
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self._with(JobStatus.RUNNING)))
        worker = self.model[job_id]["worker"]
        assert self.run(self.store.complete_many(worker, [(job_id, {})])) == [job_id]
        # A completed job keeps the id of the worker that ran it, for the record.
        self.model[job_id] = {"status": JobStatus.COMPLETED, "worker": worker}

    @precondition(lambda self: self._with(JobStatus.RUNNING))
    @rule(data=st.data(), retry=st.booleans())
    def fail(self, data: st.DataObject, retry: bool) -> None:
        job_id = data.draw(st.sampled_from(self._with(JobStatus.RUNNING)))
        worker = self.model[job_id]["worker"]
        status = self.run(self.store.fail(worker, job_id, {"message": "x"}, 0.0 if retry else None))
        expected = JobStatus.QUEUED if retry else JobStatus.FAILED
        assert status is expected
        self.model[job_id] = {"status": expected, "worker": None}

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(list(self.model)))
        before = self.model[job_id]["status"]
        if before not in CANCELLABLE:
            with pytest.raises(InvalidTransition):
                self.run(self.store.cancel(job_id))
            return
        job = self.run(self.store.cancel(job_id))
        if before is JobStatus.QUEUED:
            assert job.status is JobStatus.CANCELLED
            self.model[job_id] = {"status": JobStatus.CANCELLED, "worker": None}
        else:
            assert job.status is JobStatus.RUNNING and job.cancel_requested
            worker = self.model[job_id]["worker"]
            assert self.run(self.store.mark_cancelled(worker, job_id))
            self.model[job_id] = {"status": JobStatus.CANCELLED, "worker": None}

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(list(self.model)))
        if self.model[job_id]["status"] not in RETRYABLE:
            with pytest.raises(InvalidTransition):
                self.run(self.store.retry(job_id))
            return
        assert self.run(self.store.retry(job_id)).status is JobStatus.QUEUED
        self.model[job_id] = {"status": JobStatus.QUEUED, "worker": None}

    @rule(worker=st.sampled_from(WORKERS))
    def worker_dies(self, worker: str) -> None:
        self.run(
            self.store.pool.execute(
                "UPDATE vq.jobs SET lease_expires_at = now() - interval '1 s' WHERE worker_id = $1",
                worker,
            )
        )
        recovered = self.run(self.store.recover_expired_leases())
        assert {r["id"] for r in recovered} == set(self._with(JobStatus.RUNNING, worker))
        for row in recovered:
            self.model[row["id"]] = {"status": JobStatus.QUEUED, "worker": None}

    @rule(worker=st.sampled_from(WORKERS))
    def worker_stops(self, worker: str) -> None:
        mine = self._with(JobStatus.RUNNING, worker)
        assert set(self.run(self.store.release(worker, mine))) == set(mine)
        for job_id in mine:
            self.model[job_id] = {"status": JobStatus.QUEUED, "worker": None}

    @invariant()
    def matches_model_and_counts_add_up(self) -> None:
        rows = self.run(self.store.pool.fetch("SELECT id, status::text, worker_id FROM vq.jobs"))
        actual = {r["id"]: (JobStatus(r["status"]), r["worker_id"]) for r in rows}
        expected = {i: (m["status"], m["worker"]) for i, m in self.model.items()}
        assert actual == expected
        stats = self.run(self.store.stats())
        assert stats["total"] == len(self.model) == sum(stats["by_status"].values())


def test_job_lifecycle_matches_model(dsn: str) -> None:
    Lifecycle.dsn = dsn
    run_state_machine_as_test(
        Lifecycle,
        settings=settings(
            max_examples=30,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
