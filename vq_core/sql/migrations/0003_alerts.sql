-- 0003: alert state. One row per alert key ("queue_depth:doubt", "worker_failures:<id>"),
-- shared by every worker, so whichever process evaluates the rules knows what was sent.
CREATE TABLE vq.alerts (
    key          text PRIMARY KEY,
    rule         text NOT NULL,
    state        text NOT NULL CHECK (state IN ('firing', 'resolved')),
    summary      text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now(),
    -- When a notification (firing, repeat or resolution) last went to the sinks.
    last_sent_at timestamptz,
    resolved_at  timestamptz,
    send_count   integer NOT NULL DEFAULT 0
);

-- The engine and the admin page read the firing alerts on every tick/refresh;
-- the resolved ones are read newest first and pruned by age.
CREATE INDEX alerts_firing_idx ON vq.alerts (first_seen) WHERE state = 'firing';
CREATE INDEX alerts_resolved_idx ON vq.alerts (resolved_at) WHERE state = 'resolved';
