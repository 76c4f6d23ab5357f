-- Per job type configuration (vq.job_queue_config), per service caps (vq.service_limits)
-- and the record of who changed them (vq.config_changes).
-- One named block per query: "-- name --", then a one-line purpose. vq_core.db.queries
-- loads every file of this folder once; a name may appear in only one of them.
-- Parameters are always bound, never formatted in.

-- upsert_queue_config --
-- Set every setting of a job type; $9 names who did.
INSERT INTO vq.job_queue_config (job_type, max_retries, timeout_s, service, concurrency, paused,
                                 max_running, max_running_per_group, updated_by, callback_url)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (job_type) DO UPDATE
   SET max_retries = EXCLUDED.max_retries, timeout_s = EXCLUDED.timeout_s,
       service = EXCLUDED.service, concurrency = EXCLUDED.concurrency,
       paused = EXCLUDED.paused, max_running = EXCLUDED.max_running,
       max_running_per_group = EXCLUDED.max_running_per_group,
       callback_url = EXCLUDED.callback_url,
       updated_by = EXCLUDED.updated_by, updated_at = now();

-- list_queue_config --
-- Every job type's configuration.
SELECT job_type, max_retries, timeout_s, service, concurrency, paused, max_running,
       max_running_per_group, updated_at, updated_by, callback_url
  FROM vq.job_queue_config ORDER BY job_type;

-- lock_queue_config --
-- One job type's configuration, locked until the change that reads it commits.
SELECT job_type, max_retries, timeout_s, service, concurrency, paused, max_running,
       max_running_per_group, updated_at, updated_by, callback_url
  FROM vq.job_queue_config WHERE job_type = $1 FOR UPDATE;

-- record_config_change --
-- Keep who changed which settings of a type or service ($1: "type:NAME" or "service:NAME").
INSERT INTO vq.config_changes (subject, actor, via, changes) VALUES ($1, $2, $3, $4::jsonb);

-- list_config_changes --
-- The latest changes, newest first; $1 narrows to one subject.
SELECT id, at, subject, actor, via, changes
  FROM vq.config_changes
 WHERE $1::text IS NULL OR subject = $1::text
 ORDER BY id DESC
 LIMIT $2;

-- list_service_limits --
-- Every service's cluster-wide cap.
SELECT service, max_running, updated_at, updated_by FROM vq.service_limits ORDER BY service;

-- lock_service_limit --
-- A service's cap, locked until the change that reads it commits.
SELECT max_running FROM vq.service_limits WHERE service = $1 FOR UPDATE;

-- set_service_limit --
-- Cap a service's running jobs across every worker.
INSERT INTO vq.service_limits (service, max_running, updated_by) VALUES ($1, $2, $3)
ON CONFLICT (service) DO UPDATE
   SET max_running = EXCLUDED.max_running, updated_by = EXCLUDED.updated_by,
       updated_at = now();

-- clear_service_limit --
-- Remove a service's cap.
DELETE FROM vq.service_limits WHERE service = $1;
