-- 0011: alert sinks configured once for the whole installation, and what each delivery did.
--
-- Before this, a sink worked only on the processes whose own configuration named it,
-- and the process that happened to hold the rule lock might only log. A row of
-- vq.alert_sinks is a sink every evaluating process delivers to: a plugin builds the
-- sink from its kind and config (the vq_alert_sink_from_config hook). The secret (a
-- webhook's signing key, an SMTP password) sits in its own column so that the queries
-- that list sinks never select it; only the delivery path reads it.
--
-- vq.alert_deliveries keeps every attempt of every notification to every sink (sent,
-- retried, failed), for the admin page; the evaluating process prunes it by age.
-- installation_wide tells a stored sink (sink_id, NULL once it is removed) from a sink
-- a process's own configuration provides (the log sink).

CREATE TABLE vq.alert_sinks (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    kind text NOT NULL CHECK (kind IN ('webhook', 'email')),
    config jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(config) = 'object'),
    secret text,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL
);

CREATE TABLE vq.alert_deliveries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification uuid NOT NULL,
    alert_key text NOT NULL,
    alert_state text NOT NULL,
    sink text NOT NULL,
    sink_id bigint REFERENCES vq.alert_sinks (id) ON DELETE SET NULL,
    installation_wide boolean NOT NULL,
    attempt integer NOT NULL CHECK (attempt > 0),
    outcome text NOT NULL CHECK (outcome IN ('sent', 'failed', 'retried')),
    detail text,
    at timestamptz NOT NULL DEFAULT now()
);
-- The page reads the newest deliveries (id order is time order); pruning goes by age.
CREATE INDEX alert_deliveries_at_idx ON vq.alert_deliveries (at);
CREATE INDEX alert_deliveries_sink_idx ON vq.alert_deliveries (sink_id) WHERE sink_id IS NOT NULL;
