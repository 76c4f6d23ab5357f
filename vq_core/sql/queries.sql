-- Every query vq runs, one named block each: "-- name --" then a one-line purpose.
-- Loaded once by vq_core.db.queries; parameters are always bound, never formatted in,
-- except list_jobs' keyset condition and ORDER BY, filled from a fixed whitelist in
-- store.py.

-- enqueue_jobs --
-- Insert a batch without idempotency keys, log 'created', return the new ids in input order.
-- The batch arrives as one JSON array ($1): one parameter to encode instead of one
-- array per column, which halves the client's work on large batches.
WITH input AS MATERIALIZED (
    SELECT vq.uuid_v7() AS id, t.*
      FROM ROWS FROM (jsonb_to_recordset($1::jsonb)
                      AS (job_type text, priority smallint, payload jsonb,
                          run_at timestamptz, max_retries integer))
           WITH ORDINALITY AS t(job_type, priority, payload, run_at, max_retries, ord)
),
inserted AS (
    INSERT INTO vq.jobs (id, job_type, priority, payload, run_at, max_retries)
    SELECT i.id, i.job_type, i.priority, coalesce(i.payload, '{}'::jsonb),
           coalesce(i.run_at, now()), coalesce(i.max_retries, c.max_retries, $2::integer)
      FROM input i
      LEFT JOIN vq.job_queue_config c ON c.job_type = i.job_type
     ORDER BY i.ord
    RETURNING id
),
events AS (
    INSERT INTO vq.job_events (job_id, event)
    SELECT id, 'created' FROM inserted
)
SELECT id FROM input ORDER BY ord;

-- enqueue_jobs_keyed --
-- Insert a batch, skip idempotency-key duplicates, log 'created'. MATERIALIZED: each
-- row's id is made once, so the inserted rows can be matched back to the input.
WITH input AS MATERIALIZED (
    SELECT vq.uuid_v7() AS id, t.*
      FROM unnest($1::text[], $2::smallint[], $3::jsonb[], $4::timestamptz[],
                  $5::integer[], $6::text[])
           WITH ORDINALITY AS t(job_type, priority, payload, run_at, max_retries,
                                idempotency_key, ord)
),
inserted AS (
    INSERT INTO vq.jobs (id, job_type, priority, payload, run_at, max_retries, idempotency_key)
    SELECT i.id, i.job_type, i.priority, i.payload, coalesce(i.run_at, now()),
           coalesce(i.max_retries, c.max_retries, $7::integer), i.idempotency_key
      FROM input i
      LEFT JOIN vq.job_queue_config c ON c.job_type = i.job_type
     ORDER BY i.ord
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id
),
events AS (
    INSERT INTO vq.job_events (job_id, event)
    SELECT id, 'created' FROM inserted
)
SELECT i.ord, coalesce(ins.id, existing.id) AS id, ins.id IS NOT NULL AS created
  FROM input i
  LEFT JOIN inserted ins ON ins.id = i.id
  LEFT JOIN vq.jobs existing
         ON ins.id IS NULL AND existing.idempotency_key = i.idempotency_key
 ORDER BY i.ord;

-- ids_by_idempotency_key --
-- Resolve keys whose job was inserted by a concurrent transaction.
SELECT idempotency_key, id FROM vq.jobs WHERE idempotency_key = ANY($1::text[]);

-- claim_jobs --
-- Take up to $3 eligible jobs of the given types, highest priority then oldest, with a lease.
WITH claimed AS (
    UPDATE vq.jobs j
       SET status = 'running',
           worker_id = $1,
           started_at = now(),
           updated_at = now(),
           lease_expires_at = now() + make_interval(secs => $4::float8)
     WHERE j.id = ANY(ARRAY(
               SELECT q.id
                 FROM vq.jobs q
                WHERE q.status = 'queued'
                  AND q.run_at <= now()
                  AND q.job_type = ANY($2::text[])
                ORDER BY q.priority, q.run_at
                LIMIT $3
                  FOR UPDATE SKIP LOCKED))
    RETURNING j.id, j.job_type, j.priority, j.payload, j.retry_count, j.max_retries,
              j.created_at
),
events AS (
    INSERT INTO vq.job_events (job_id, event, worker_id)
    SELECT id, 'claimed', $1 FROM claimed
)
SELECT * FROM claimed;

-- renew_leases --
-- Extend the leases of a worker's jobs in flight; report which are still its and any cancel asks.
UPDATE vq.jobs
   SET lease_expires_at = now() + make_interval(secs => $3::float8)
 WHERE id = ANY($2::uuid[]) AND worker_id = $1 AND status = 'running'
RETURNING id, cancel_requested;

-- complete_jobs --
-- Mark a batch completed with results (copying the video fields into the payload too);
-- answer the ids that were no longer this worker's (lease lost), usually none. The
-- results come as one JSON array ($3): one value to encode, not one per job.
WITH input AS (
    SELECT * FROM ROWS FROM (unnest($2::uuid[]), jsonb_array_elements($3::jsonb)) AS t(id, result)
),
done AS (
    UPDATE vq.jobs j
       SET status = 'completed',
           result = i.result,
           payload = CASE WHEN i.result ? 'video_url'
                          THEN j.payload || jsonb_strip_nulls(jsonb_build_object(
                              'video_url', i.result -> 'video_url',
                              'thumbnail_url', i.result -> 'thumbnail_url',
                              'duration', i.result -> 'duration'))
                          ELSE j.payload END,
           completed_at = now(),
           updated_at = now(),
           lease_expires_at = NULL
      FROM input i
     WHERE j.id = i.id AND j.worker_id = $1 AND j.status = 'running'
    RETURNING j.id
),
events AS (
    INSERT INTO vq.job_events (job_id, event, worker_id)
    SELECT id, 'completed', $1 FROM done
),
counters AS (
    UPDATE vq.workers
       SET jobs_completed = jobs_completed + (SELECT count(*) FROM done),
           consecutive_failures = 0
     WHERE id = $1
)
SELECT i.id FROM input i WHERE NOT EXISTS (SELECT 1 FROM done d WHERE d.id = i.id);

-- fail_job --
-- Record a failed attempt: back to the queue after $4 seconds, or failed for good when $4 is NULL.
WITH failed AS (
    UPDATE vq.jobs
       SET status = CASE WHEN $4::float8 IS NULL THEN 'failed' ELSE 'queued' END::vq.job_status,
           retry_count = retry_count + CASE WHEN $4::float8 IS NULL THEN 0 ELSE 1 END,
           run_at = CASE WHEN $4::float8 IS NULL THEN run_at
                         ELSE now() + make_interval(secs => $4::float8) END,
           completed_at = CASE WHEN $4::float8 IS NULL THEN now() END,
           error = $3::jsonb,
           worker_id = NULL,
           lease_expires_at = NULL,
           updated_at = now()
     WHERE id = $2 AND worker_id = $1 AND status = 'running'
    RETURNING id, status, run_at
),
events AS (
    INSERT INTO vq.job_events (job_id, event, worker_id, details)
    SELECT id, CASE WHEN status = 'failed' THEN 'failed' ELSE 'retry_scheduled' END, $1,
           $3::jsonb || jsonb_build_object('run_at', run_at)
      FROM failed
),
counters AS (
    UPDATE vq.workers
       SET jobs_failed = jobs_failed + 1,
           consecutive_failures = consecutive_failures + 1
     WHERE id = $1 AND EXISTS (SELECT 1 FROM failed)
)
SELECT status::text AS status, run_at FROM failed;

-- update_progress --
-- Store a running job's progress (percent and stage) and log it.
WITH updated AS (
    UPDATE vq.jobs
       SET progress = $3::jsonb, updated_at = now()
     WHERE id = $2 AND worker_id = $1 AND status = 'running'
    RETURNING id
)
INSERT INTO vq.job_events (job_id, event, worker_id, details)
SELECT id, 'progress', $1, $3::jsonb FROM updated
RETURNING job_id;

-- cancel_job --
-- Cancel a queued job at once; ask a running job's worker to stop it.
WITH target AS (
    SELECT id, status FROM vq.jobs WHERE id = $1 AND status IN ('queued', 'running') FOR UPDATE
),
updated AS (
    UPDATE vq.jobs j
       SET status = CASE WHEN t.status = 'queued' THEN 'cancelled' ELSE 'running' END::vq.job_status,
           cancel_requested = (t.status = 'running'),
           completed_at = CASE WHEN t.status = 'queued' THEN now() END,
           updated_at = now()
      FROM target t
     WHERE j.id = t.id
    RETURNING j.id, j.status::text AS status, j.worker_id
),
events AS (
    INSERT INTO vq.job_events (job_id, event, details)
    SELECT id, CASE WHEN status = 'cancelled' THEN 'cancelled' ELSE 'cancel_requested' END, $2::jsonb
      FROM updated
)
SELECT id, status, worker_id FROM updated;

-- notify_cancel --
-- Tell the worker running a job to abort it now rather than at its next lease renewal.
SELECT pg_notify('vq_cancel', $1::text);

-- notify_jobs --
-- Wake idle workers after jobs became eligible by an update rather than an insert.
SELECT pg_notify('vq_jobs', '');

-- mark_cancelled --
-- A worker stopped a job it was asked to cancel.
WITH updated AS (
    UPDATE vq.jobs
       SET status = 'cancelled', completed_at = now(), updated_at = now(),
           worker_id = NULL, lease_expires_at = NULL, error = $3::jsonb
     WHERE id = $2 AND worker_id = $1 AND status = 'running'
    RETURNING id
)
INSERT INTO vq.job_events (job_id, event, worker_id)
SELECT id, 'cancelled', $1 FROM updated
RETURNING job_id;

-- retry_job --
-- An operator sends a failed or cancelled job back to the queue with a fresh set of retries.
WITH updated AS (
    UPDATE vq.jobs
       SET status = 'queued', run_at = now(), retry_count = 0, error = NULL, result = NULL,
           progress = NULL, cancel_requested = false, completed_at = NULL, started_at = NULL,
           worker_id = NULL, lease_expires_at = NULL, updated_at = now()
     WHERE id = $1 AND status IN ('failed', 'cancelled')
    RETURNING id
)
INSERT INTO vq.job_events (job_id, event, details)
SELECT id, 'retried', $2::jsonb FROM updated
RETURNING job_id;

-- release_jobs --
-- Hand a stopping worker's unfinished jobs back to the queue, keeping their place.
WITH released AS (
    UPDATE vq.jobs
       SET status = 'queued', worker_id = NULL, lease_expires_at = NULL, updated_at = now()
     WHERE id = ANY($2::uuid[]) AND worker_id = $1 AND status = 'running'
    RETURNING id
)
INSERT INTO vq.job_events (job_id, event, worker_id)
SELECT id, 'released', $1 FROM released
RETURNING job_id;

-- recover_expired_leases --
-- Put running jobs whose worker stopped renewing back in the queue (or finish a cancel).
WITH expired AS (
    SELECT id, worker_id
      FROM vq.jobs
     WHERE status = 'running' AND lease_expires_at < now()
       FOR UPDATE SKIP LOCKED
),
recovered AS (
    UPDATE vq.jobs j
       SET status = CASE WHEN j.cancel_requested THEN 'cancelled' ELSE 'queued' END::vq.job_status,
           completed_at = CASE WHEN j.cancel_requested THEN now() END,
           worker_id = NULL, lease_expires_at = NULL, updated_at = now()
      FROM expired e
     WHERE j.id = e.id
    RETURNING j.id, j.status::text AS status, e.worker_id
),
events AS (
    INSERT INTO vq.job_events (job_id, event, details)
    SELECT id, 'lease_expired', jsonb_build_object('worker_id', worker_id, 'status', status)
      FROM recovered
)
SELECT id, status, worker_id FROM recovered;

-- get_job --
-- One job by id.
SELECT * FROM vq.jobs WHERE id = $1;

-- get_job_events --
-- A job's history, oldest first.
SELECT id, job_id, event, at, worker_id, details
  FROM vq.job_events WHERE job_id = $1 ORDER BY id;

-- list_jobs --
-- One page of the job list, filtered, in keyset order ({after} and {order} from a
-- whitelist: by id alone for creation order, else by (column, id)).
SELECT *
  FROM vq.jobs
 WHERE ($1::vq.job_status IS NULL OR status = $1::vq.job_status)
   AND ($2::text IS NULL OR job_type = $2::text)
   AND ($3::smallint IS NULL OR priority = $3::smallint)
   AND ($4::text IS NULL
        OR job_type ILIKE '%' || $4::text || '%'
        OR payload ->> 'question' ILIKE '%' || $4::text || '%'
        OR payload ->> 'topic' ILIKE '%' || $4::text || '%')
   AND ($5::text IS NULL OR {after})
 ORDER BY {order}
 LIMIT $7;

-- count_by_status_type_priority --
-- The live counts behind the stats page.
SELECT status::text AS status, job_type, priority, count(*) AS n
  FROM vq.jobs GROUP BY status, job_type, priority;

-- queue_depth --
-- Jobs ready to run now and the age of the oldest queued job.
SELECT count(*) FILTER (WHERE run_at <= now()) AS ready,
       count(*) AS queued,
       extract(epoch FROM now() - min(created_at))::float8 AS oldest_age_s
  FROM vq.jobs WHERE status = 'queued';

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

-- prune_jobs --
-- Delete up to $2 finished jobs older than $1 seconds, with their history.
WITH old AS (
    SELECT id FROM vq.jobs
     WHERE status IN ('completed', 'failed', 'cancelled')
       AND completed_at < now() - make_interval(secs => $1::float8)
     LIMIT $2
),
gone AS (
    DELETE FROM vq.jobs j USING old WHERE j.id = old.id RETURNING j.id
),
history AS (
    DELETE FROM vq.job_events e USING gone WHERE e.job_id = gone.id
)
SELECT count(*) FROM gone;

-- register_worker --
-- Announce a worker (or bring back one that restarted with the same id).
INSERT INTO vq.workers (id, hostname, pid, concurrency, job_types, lease_seconds)
VALUES ($1, $2, $3, $4, $5::text[], $6)
ON CONFLICT (id) DO UPDATE
   SET status = 'running', last_heartbeat = now(), started_at = now(),
       concurrency = EXCLUDED.concurrency, job_types = EXCLUDED.job_types,
       lease_seconds = EXCLUDED.lease_seconds;

-- heartbeat_worker --
-- A worker is alive with this many jobs in flight; returns false if its row is gone.
UPDATE vq.workers
   SET last_heartbeat = now(), jobs_in_flight = $2, status = $3
 WHERE id = $1
RETURNING id;

-- deregister_worker --
-- A worker says goodbye.
DELETE FROM vq.workers WHERE id = $1;

-- list_workers --
-- All known workers, with whether their heartbeat is older than their lease.
SELECT *, last_heartbeat < now() - make_interval(secs => lease_seconds) AS stale
  FROM vq.workers ORDER BY started_at;

-- prune_workers --
-- Forget workers silent for longer than $1 seconds.
DELETE FROM vq.workers
 WHERE last_heartbeat < now() - make_interval(secs => $1::float8)
RETURNING id;

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

-- record_service_health --
-- Store a service's latest health check; changed_at moves only when the answer flips.
INSERT INTO vq.service_health (service, healthy, detail, job_types)
VALUES ($1, $2, $3, $4::text[])
ON CONFLICT (service) DO UPDATE
   SET healthy = EXCLUDED.healthy, detail = EXCLUDED.detail, job_types = EXCLUDED.job_types,
       checked_at = now(),
       changed_at = CASE WHEN vq.service_health.healthy = EXCLUDED.healthy
                         THEN vq.service_health.changed_at ELSE now() END;

-- list_service_health --
-- Every service's latest health check.
SELECT service, healthy, checked_at, changed_at, detail, job_types
  FROM vq.service_health ORDER BY service;

-- create_user --
-- Add a user with an argon2 password hash; NULL when the name is taken.
INSERT INTO vq.users (username, password_hash, role) VALUES ($1, $2, $3)
ON CONFLICT (username) DO NOTHING
RETURNING id, username, role, created_at, disabled;

-- any_user --
-- Whether the users table holds anyone (the first start creates an admin otherwise).
SELECT EXISTS (SELECT 1 FROM vq.users);

-- create_first_admin --
-- Add the first user as admin only while there is no user at all (NULL otherwise).
INSERT INTO vq.users (username, password_hash, role)
SELECT $1, $2, 'admin' WHERE NOT EXISTS (SELECT 1 FROM vq.users)
ON CONFLICT (username) DO NOTHING
RETURNING id;

-- get_user_for_login --
-- A user's hash, role and disabled flag, to check a password or a session.
SELECT id, username, password_hash, role, disabled FROM vq.users WHERE username = $1;

-- update_user --
-- Change a user's password hash, role or disabled flag (NULL keeps the current value).
UPDATE vq.users
   SET password_hash = coalesce($2, password_hash),
       role = coalesce($3, role),
       disabled = coalesce($4, disabled)
 WHERE username = $1
RETURNING id, username, role, created_at, disabled;

-- list_users --
-- Every user, without password hashes.
SELECT id, username, role, created_at, disabled FROM vq.users ORDER BY username;

-- create_token --
-- Add an API token by its sha256; NULL when a live token already has this name.
INSERT INTO vq.api_tokens (name, token_hash, role) VALUES ($1, $2, $3)
ON CONFLICT (name) WHERE NOT revoked DO NOTHING
RETURNING id, name, role, created_at, last_used_at, revoked;

-- get_token_by_hash --
-- The live token with this sha256, if any.
SELECT id, name, role, last_used_at FROM vq.api_tokens WHERE token_hash = $1 AND NOT revoked;

-- touch_token --
-- Record a token's use, at most once a minute so busy clients do not write on every call.
UPDATE vq.api_tokens SET last_used_at = now()
 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');

-- list_tokens --
-- Every token, without hashes.
SELECT id, name, role, created_at, last_used_at, revoked FROM vq.api_tokens ORDER BY id;

-- revoke_token --
-- Revoke a live token by id or by name.
UPDATE vq.api_tokens SET revoked = true
 WHERE NOT revoked AND (id = $1::bigint OR name = $2::text)
RETURNING id, name, role, created_at, last_used_at, revoked;

-- count_login_failures --
-- Failed logins of a username from an address within the last $3 seconds, and the oldest one.
SELECT count(*) AS n, extract(epoch FROM now() - min(at))::float8 AS oldest_age_s
  FROM vq.login_failures
 WHERE username = $1 AND ip = $2 AND at > now() - make_interval(secs => $3::float8);

-- record_login_failure --
-- Remember a failed login and forget failures older than $3 seconds (keeps the table small).
WITH pruned AS (
    DELETE FROM vq.login_failures WHERE at < now() - make_interval(secs => $3::float8)
)
INSERT INTO vq.login_failures (username, ip) VALUES ($1, $2);

-- clear_login_failures --
-- A successful login wipes the failures of that username from that address.
DELETE FROM vq.login_failures WHERE username = $1 AND ip = $2;

-- ensure_app_secret --
-- Store a secret unless one with this name exists; return the stored value either way.
WITH inserted AS (
    INSERT INTO vq.app_secrets (name, value) VALUES ($1, $2)
    ON CONFLICT (name) DO NOTHING
    RETURNING value
)
SELECT value FROM inserted
UNION ALL
SELECT value FROM vq.app_secrets WHERE name = $1
LIMIT 1;

-- alerts_try_lock --
-- Take the alert evaluator's lock for this transaction (false: another process holds it).
SELECT pg_try_advisory_xact_lock($1::bigint) AS locked, now() AS now;

-- alert_queue_by_type --
-- Per job type: jobs ready now, all queued, and how long the oldest ready one has waited.
SELECT job_type,
       count(*) FILTER (WHERE run_at <= now()) AS ready,
       count(*) AS queued,
       extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now()))::float8
           AS oldest_wait_s
  FROM vq.jobs
 WHERE status = 'queued'
 GROUP BY job_type;

-- alert_outcomes_by_type --
-- Per job type: jobs completed and failed for good within the last $1 seconds.
SELECT job_type,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'failed') AS failed
  FROM vq.jobs
 WHERE completed_at > now() - make_interval(secs => $1::float8)
   AND status IN ('completed', 'failed')
 GROUP BY job_type;

-- alerts_for_update --
-- The alerts the evaluator may change: every firing one plus those it found now.
SELECT key, rule, state, summary, details, first_seen, last_seen, last_sent_at, resolved_at,
       send_count
  FROM vq.alerts
 WHERE state = 'firing' OR key = ANY($1::text[]);

-- upsert_alert --
-- Write an alert's state as the evaluator decided it.
INSERT INTO vq.alerts (key, rule, state, summary, details, first_seen, last_seen,
                       last_sent_at, resolved_at, send_count)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10)
ON CONFLICT (key) DO UPDATE
   SET rule = EXCLUDED.rule, state = EXCLUDED.state, summary = EXCLUDED.summary,
       details = EXCLUDED.details, first_seen = EXCLUDED.first_seen,
       last_seen = EXCLUDED.last_seen, last_sent_at = EXCLUDED.last_sent_at,
       resolved_at = EXCLUDED.resolved_at, send_count = EXCLUDED.send_count;

-- prune_resolved_alerts --
-- Forget alerts resolved more than $1 seconds ago.
DELETE FROM vq.alerts
 WHERE state = 'resolved' AND resolved_at < now() - make_interval(secs => $1::float8);

-- list_alerts --
-- Firing alerts (newest first), then, unless $1, recent resolutions; at most $2 rows.
SELECT key, rule, state, summary, details, first_seen, last_seen, last_sent_at, resolved_at,
       send_count
  FROM vq.alerts
 WHERE state = 'firing' OR NOT $1::boolean
 ORDER BY state = 'firing' DESC, coalesce(resolved_at, first_seen) DESC, key
 LIMIT $2;

-- count_firing_alerts --
-- Firing alerts per rule, for the metrics endpoint.
SELECT rule, count(*) AS n FROM vq.alerts WHERE state = 'firing' GROUP BY rule;
