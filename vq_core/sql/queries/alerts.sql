-- Alert state (vq.alerts) and the queue readings the alert rules need.
-- One named block per query: "-- name --", then a one-line purpose. vq_core.db.queries
-- loads every file of this folder once; a name may appear in only one of them.
-- Parameters are always bound, never formatted in.

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
