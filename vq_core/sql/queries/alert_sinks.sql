-- Installation-wide alert sinks (vq.alert_sinks) and the record of each delivery
-- attempt (vq.alert_deliveries). Only deliverable_alert_sinks selects the secret: every
-- query that lists sinks for people selects whether there is one, never its value.

-- add_alert_sink --
-- Store a new sink; no row when the name is taken.
INSERT INTO vq.alert_sinks (name, kind, config, secret, created_by)
VALUES ($1, $2, $3::jsonb, $4, $5)
ON CONFLICT (name) DO NOTHING
RETURNING id, name, kind, config, secret IS NOT NULL AS has_secret, created_at, created_by;

-- list_alert_sinks --
-- Every sink for people to read, by name: no secret, only whether one is set.
SELECT id, name, kind, config, secret IS NOT NULL AS has_secret, created_at, created_by
  FROM vq.alert_sinks
 ORDER BY name;

-- deliverable_alert_sinks --
-- Every sink with its secret, for the process that delivers notifications.
SELECT id, name, kind, config, secret
  FROM vq.alert_sinks
 ORDER BY name;

-- remove_alert_sink --
-- Delete a sink by name (its past deliveries stay, by name); no row when there is none.
DELETE FROM vq.alert_sinks WHERE name = $1 RETURNING id;

-- record_alert_delivery --
-- One attempt to deliver a notification to a sink, and how it went.
INSERT INTO vq.alert_deliveries (notification, alert_key, alert_state, sink, sink_id,
                                 installation_wide, attempt, outcome, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- list_alert_deliveries --
-- The newest $1 delivery attempts, newest first.
SELECT id, notification, alert_key, alert_state, sink, sink_id, installation_wide, attempt,
       outcome, detail, at
  FROM vq.alert_deliveries
 ORDER BY id DESC
 LIMIT $1;

-- prune_alert_deliveries --
-- Forget delivery attempts older than $1 seconds.
DELETE FROM vq.alert_deliveries WHERE at < now() - make_interval(secs => $1::float8);
