-- Queue statistics read from vq.jobs: counts, depth, finished windows, throughput.
-- One named block per query: "-- name --", then a one-line purpose. vq_core.db.queries
-- loads every file of this folder once; a name may appear in only one of them.
-- Parameters are always bound, never formatted in.

-- count_by_status_type_priority --
-- The counts behind the stats page, exact and in one snapshot: finished jobs from
-- vq.job_counts (kept by migration 0016's triggers, summed over its shards), queued and
-- running jobs counted live through their partial indexes (jobs_ready_idx,
-- jobs_lease_idx), so the read does not grow with the history.
SELECT status::text AS status, job_type, priority, sum(n)::bigint AS n
  FROM vq.job_counts
 GROUP BY status, job_type, priority
HAVING sum(n) <> 0
UNION ALL
SELECT status::text, job_type, priority, count(*)
  FROM vq.jobs WHERE status = 'queued' GROUP BY status, job_type, priority
UNION ALL
SELECT status::text, job_type, priority, count(*)
  FROM vq.jobs WHERE status = 'running' GROUP BY status, job_type, priority;

-- ready_depth --
-- Jobs ready to run now: the vq_queue_depth gauge, and the very query KEDA scales workers
-- on (deploy/kubernetes/keda.yaml holds a copy that tests/deploy/test_kubernetes.py
-- keeps equal to this one). One integer; jobs_ready_idx answers it.
SELECT count(*) FROM vq.jobs WHERE status = 'queued' AND run_at <= now();

-- queue_depth --
-- Jobs queued at all, jobs scheduled for later, and how long the longest-waiting ready
-- job has been ready (a job scheduled for later is not waiting: it is not counted).
-- The ready count itself is ready_depth's.
SELECT count(*) AS queued,
       count(*) FILTER (WHERE run_at > now()) AS scheduled,
       min(run_at) FILTER (WHERE run_at > now()) AS next_run_at,
       extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now()))::float8
           AS oldest_age_s
  FROM vq.jobs WHERE status = 'queued';

-- type_counts --
-- Each job type's jobs by state, ready and scheduled apart: the types overview. Finished
-- counts from vq.job_counts, unfinished ones live, as count_by_status_type_priority.
SELECT job_type,
       coalesce(sum(n) FILTER (WHERE status = 'queued' AND ready), 0)::bigint AS ready,
       coalesce(sum(n) FILTER (WHERE status = 'queued' AND NOT ready), 0)::bigint AS scheduled,
       coalesce(sum(n) FILTER (WHERE status = 'running'), 0)::bigint AS running,
       coalesce(sum(n) FILTER (WHERE status = 'completed'), 0)::bigint AS completed,
       coalesce(sum(n) FILTER (WHERE status = 'failed'), 0)::bigint AS failed,
       coalesce(sum(n) FILTER (WHERE status = 'cancelled'), 0)::bigint AS cancelled
  FROM (SELECT job_type, status, true AS ready, n FROM vq.job_counts
        UNION ALL
        SELECT job_type, status, run_at <= now(), 1 FROM vq.jobs WHERE status = 'queued'
        UNION ALL
        SELECT job_type, status, true, 1 FROM vq.jobs WHERE status = 'running') AS t
 GROUP BY job_type
HAVING sum(n) <> 0;

-- finished_windows --
-- Completions and failures over the last 1, 5, 15 and 60 minutes.
SELECT count(*) FILTER (WHERE status = 'completed' AND completed_at > now() - interval '1 minute') AS completed_1m,
       count(*) FILTER (WHERE status = 'failed' AND completed_at > now() - interval '1 minute') AS failed_1m,
       count(*) FILTER (WHERE status = 'completed' AND completed_at > now() - interval '5 minutes') AS completed_5m,
       count(*) FILTER (WHERE status = 'failed' AND completed_at > now() - interval '5 minutes') AS failed_5m,
       count(*) FILTER (WHERE status = 'completed' AND completed_at > now() - interval '15 minutes') AS completed_15m,
       count(*) FILTER (WHERE status = 'failed' AND completed_at > now() - interval '15 minutes') AS failed_15m,
       count(*) FILTER (WHERE status = 'completed') AS completed_60m,
       count(*) FILTER (WHERE status = 'failed') AS failed_60m,
       avg(extract(epoch FROM completed_at - started_at)) FILTER (WHERE status = 'completed') AS avg_s,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
           ORDER BY extract(epoch FROM completed_at - started_at))
           FILTER (WHERE status = 'completed') AS duration_pcts
  FROM vq.jobs
 WHERE completed_at > now() - interval '60 minutes';

-- throughput_series --
-- Completions per minute over the last hour, for the admin chart.
SELECT date_trunc('minute', completed_at) AS minute,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'failed') AS failed
  FROM vq.jobs
 WHERE completed_at > now() - interval '60 minutes'
 GROUP BY 1 ORDER BY 1;
