-- The latest health check of each video service (vq.service_health).
-- One named block per query: "-- name --", then a one-line purpose. vq_core.db.queries
-- loads every file of this folder once; a name may appear in only one of them.
-- Parameters are always bound, never formatted in.

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
