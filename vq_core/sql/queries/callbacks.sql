-- Completion callbacks: the outbox (vq.callback_deliveries, filled by the jobs table's
-- trigger of migration 0012) and every attempt (vq.callback_attempts).
-- One named block per query: "-- name --", then a one-line purpose. vq_core.db.queries
-- loads every file of this folder once; a name may appear in only one of them.
-- Parameters are always bound, never formatted in.

-- claim_callbacks --
-- Lease up to $1 due deliveries for $2 seconds and count the attempt begun: a process
-- that dies mid-attempt leaves the row to whoever claims it after the lease.
WITH due AS (
    SELECT id FROM vq.callback_deliveries
     WHERE state = 'pending' AND next_attempt_at <= now()
       AND (locked_until IS NULL OR locked_until <= now())
     ORDER BY next_attempt_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
)
UPDATE vq.callback_deliveries d
   SET locked_until = now() + make_interval(secs => $2::float8),
       attempts = d.attempts + 1, updated_at = now()
  FROM due
 WHERE d.id = due.id
RETURNING d.id, d.job_id, d.url, d.body, d.attempts;

-- record_callback_attempt --
-- Keep an attempt ($1 delivery, $2 its number, $3 outcome, $4 status code, $5 detail,
-- $6 worker) and move the delivery on: delivered, failed, or retried after $7 seconds.
-- A stale attempt (its lease ran out, another process claimed it since) only adds its
-- row, unless it delivered: then the delivery is delivered whoever holds it.
WITH moved AS (
    UPDATE vq.callback_deliveries
       SET state = CASE WHEN $3::text = 'retried' THEN 'pending' ELSE $3::text END,
           next_attempt_at = CASE WHEN $3::text = 'retried'
                                  THEN now() + make_interval(secs => $7::float8)
                                  ELSE next_attempt_at END,
           locked_until = NULL,
           last_error = CASE WHEN $3::text = 'delivered' THEN NULL ELSE $5::text END,
           delivered_at = CASE WHEN $3::text = 'delivered' THEN now() END,
           updated_at = now()
     WHERE id = $1 AND state = 'pending' AND (attempts = $2 OR $3::text = 'delivered')
    RETURNING id
)
INSERT INTO vq.callback_attempts (delivery_id, attempt, outcome, status_code, detail, worker_id)
VALUES ($1, $2, $3, $4, $5, $6);

-- job_callbacks --
-- A job's deliveries, oldest first, each with its attempts (oldest first) as JSON.
SELECT d.id, d.job_id, d.url, d.body, d.state, d.attempts, d.next_attempt_at,
       d.locked_until, d.last_error, d.created_at, d.updated_at, d.delivered_at,
       coalesce((SELECT jsonb_agg(jsonb_build_object(
                            'attempt', a.attempt, 'at', a.at, 'status_code', a.status_code,
                            'outcome', a.outcome, 'detail', a.detail,
                            'worker_id', a.worker_id) ORDER BY a.id)
                   FROM vq.callback_attempts a WHERE a.delivery_id = d.id),
                '[]'::jsonb) AS attempt_log
  FROM vq.callback_deliveries d
 WHERE d.job_id = $1
 ORDER BY d.id;

-- redeliver_callback --
-- An admin sends a delivery again: pending now, a fresh set of attempts, the same id
-- and body; the request is kept among the attempts ($3 who, $4 how). NULL: no such delivery.
WITH reset AS (
    UPDATE vq.callback_deliveries d
       SET state = 'pending', attempts = 0, next_attempt_at = now(), locked_until = NULL,
           delivered_at = NULL, updated_at = now()
      FROM (SELECT id, attempts FROM vq.callback_deliveries
             WHERE id = $2 AND job_id = $1 FOR UPDATE) old
     WHERE d.id = old.id
    RETURNING d.id, old.attempts
),
logged AS (
    INSERT INTO vq.callback_attempts (delivery_id, attempt, outcome, detail)
    SELECT id, attempts, 'redelivered', 'redelivery requested by ' || $3::text || ' via ' || $4::text
      FROM reset
)
SELECT id FROM reset;

-- notify_callbacks --
-- Wake the deliverers (a redelivery); the trigger does it for new deliveries.
SELECT pg_notify('vq_callbacks', '');
