-- 0004: indexes for the job list of the admin page and GET /jobs at a million jobs
-- (measured by load/bench_admin.py, see docs/performance.md "Admin page").
--
-- The list walks jobs_created_idx newest first and filters; that is instant while the
-- filter matches many rows, and a walk of the whole table when it matches fewer than
-- a page. Two such filters are everyday ones:

-- A job type with few jobs (a new or rarely used type): without this, a type filter
-- is a scan of the table (~250-400 ms at 1M rows); with it, about a millisecond.
-- Cost: one more index entry per row version (job_type never changes).
CREATE INDEX jobs_type_created_idx ON vq.jobs (job_type, created_at DESC, id DESC);

-- "Show the failures": in a healthy queue failed and cancelled jobs are rare, so the
-- status filter would pass over every completed job. Partial, so it is written only
-- when a job ends badly; queued and running are served by jobs_claim_idx and
-- jobs_lease_idx, and completed jobs are most of the table.
CREATE INDEX jobs_failed_cancelled_idx ON vq.jobs (status, created_at DESC, id DESC)
    WHERE status IN ('failed', 'cancelled');
