-- Jobs and their history (vq.jobs, vq.job_events): submit, claim, renew leases, complete,
-- fail, progress, cancel, retry, release, recover expired leases, read, list and prune.
-- One named block per query: "-- name --", then a one-line purpose. vq_core.db.queries
-- loads every file of this folder once; a name may appear in only one of them.
-- Parameters are always bound, never formatted in, except list_jobs' keyset condition
-- and ORDER BY, filled from a fixed whitelist in vq_core/store/listing.py.

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
-- A job this worker completed already counts as done, not lost: a retry after a lost
-- reply must not report a completion the database holds. Completed jobs keep their
-- worker_id, and nothing moves a completed job on, so the pair is proof enough. The
-- current error goes (the failed attempts' events keep theirs).
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
           error = NULL,
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
),
-- MATERIALIZED: the jobs table is read only for the jobs done missed, none as a rule.
missed AS MATERIALIZED (
    SELECT i.id FROM input i WHERE NOT EXISTS (SELECT 1 FROM done d WHERE d.id = i.id)
)
-- The statement's snapshot predates done, so this sees earlier completions only.
SELECT m.id
  FROM missed m
 WHERE NOT EXISTS (SELECT 1 FROM vq.jobs j
                    WHERE j.id = m.id AND j.worker_id = $1 AND j.status = 'completed');

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
