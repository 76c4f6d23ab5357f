"""The prefetch allowance follows the measured pace of the jobs."""

from __future__ import annotations

from vq_core.worker.prefetch import Prefetch


def test_nothing_is_prefetched_before_a_run_was_measured() -> None:
    assert Prefetch(10, 1000, 0.1).allowance() == 0


def test_fast_jobs_fill_the_allowance_up_to_its_limit() -> None:
    prefetch = Prefetch(10, 1000, 0.1)
    prefetch.observe(0.00005)
    assert prefetch.allowance() == 1000
    prefetch.observe(0.0)  # a run too short for the clock
    assert prefetch.allowance() == 1000


def test_the_allowance_is_what_the_slots_finish_within_the_wait() -> None:
    prefetch = Prefetch(10, 1000, 0.1)
    prefetch.observe(0.01)  # 10 slots x 0.1 s / 0.01 s a job
    assert prefetch.allowance() == 100


def test_long_renders_are_never_prefetched() -> None:
    prefetch = Prefetch(10, 1000, 0.1)
    prefetch.observe(30.0)
    assert prefetch.allowance() == 0


def test_slow_jobs_after_fast_ones_stop_the_prefetch_within_a_few_runs() -> None:
    prefetch = Prefetch(10, 1000, 0.1)
    for _ in range(100):
        prefetch.observe(0.0001)
    runs = 0
    while prefetch.allowance() > 0:
        prefetch.observe(60.0)
        runs += 1
    assert 1 <= runs <= 3


def test_a_limit_of_zero_turns_it_off() -> None:
    prefetch = Prefetch(10, 0, 0.1)
    prefetch.observe(0.0001)
    assert prefetch.allowance() == 0
