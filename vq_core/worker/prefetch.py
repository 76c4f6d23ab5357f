"""Prefetch: how many jobs a worker may claim beyond its free slots.

A claim is a round trip; a no-op job runs in microseconds. Claiming only as many jobs
as there are free slots (five per claim at the default concurrency of 10) leaves a
worker of short jobs spending its time on claims. So, like graphile-worker's local
queue, a worker may hold more jobs than it runs: they wait in the process for a slot,
their leases renewed like the others', and go back to the queue on shutdown.

Holding a job no one runs is only right when it will start soon, so the allowance
follows the jobs' own pace: as many as the worker's slots finish within
``prefetch_wait`` seconds at the mean run time measured so far (a moving average),
at most ``prefetch``. Until a run has been measured, and for a video that renders in
minutes, that is none: a worker of long renders claims exactly what it runs, and a
job never waits in one worker while another is idle.
"""

from __future__ import annotations

import math

#: Weight of the newest run in the moving average: a few runs move it, so a switch
#: from fast to slow jobs stops prefetching within a handful of jobs.
SMOOTHING = 0.2


class Prefetch:
    """The prefetch allowance of one worker process.

    :param concurrency: jobs the worker runs at once.
    :param limit: jobs it may hold beyond those (``prefetch``; 0 turns it off).
    :param wait_s: how long, at the measured pace, a held job may expect to wait
        (``prefetch_wait``).
    """

    def __init__(self, concurrency: int, limit: int, wait_s: float) -> None:
        self.concurrency = concurrency
        self.limit = limit
        self.wait_s = wait_s
        #: Mean seconds a job runs, once one has (None before).
        self.mean_run_s: float | None = None

    def observe(self, run_s: float) -> None:
        """Count one finished run of ``run_s`` seconds."""
        run_s = max(run_s, 0.0)
        mean = self.mean_run_s
        self.mean_run_s = run_s if mean is None else mean + SMOOTHING * (run_s - mean)

    def allowance(self) -> int:
        """Jobs to hold beyond the slots now: 0 until a run was measured."""
        mean = self.mean_run_s
        if self.limit <= 0 or mean is None:
            return 0
        if mean <= 0:
            return self.limit
        return min(self.limit, math.floor(self.concurrency * self.wait_s / mean))
