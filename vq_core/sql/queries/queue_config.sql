-- Per job type configuration (vq.job_queue_config).
-- One named block per query: "-- name --", then a one-line purpose. vq_core.db.queries
-- loads every file of this folder once; a name may appear in only one of them.
-- Parameters are always bound, never formatted in.

-- upsert_queue_config --
-- Set a job type's retry limit, timeout, service, concurrency and pause flag.
INSERT INTO vq.job_queue_config (job_type, max_retries, timeout_s, service, concurrency, paused)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (job_type) DO UPDATE
   SET max_retries = EXCLUDED.max_retries, timeout_s = EXCLUDED.timeout_s,
       service = EXCLUDED.service, concurrency = EXCLUDED.concurrency,
       paused = EXCLUDED.paused, updated_at = now();

-- list_queue_config --
-- Every job type's configuration.
SELECT job_type, max_retries, timeout_s, service, concurrency, paused
  FROM vq.job_queue_config ORDER BY job_type;
