-- Workers (vq.workers): register, heartbeat, goodbye, list, prune.
-- One named block per query: "-- name --", then a one-line purpose. vq_core.db.queries
-- loads every file of this folder once; a name may appear in only one of them.
-- Parameters are always bound, never formatted in.

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
