-- 0012: completion callbacks.
--
-- A job may name a callback URL, and a job type may give its jobs a default one; the
-- job row keeps the URL it was submitted with (the type's default copied in at insert),
-- so a later change of the default does not redirect callbacks of jobs already queued.

ALTER TABLE vq.jobs
    ADD COLUMN callback_url text CHECK (callback_url IS NULL OR length(callback_url) <= 2000);

ALTER TABLE vq.job_queue_config
    ADD COLUMN callback_url text CHECK (callback_url IS NULL OR length(callback_url) <= 2000);

-- The outbox. A job with a callback URL that reaches a final state gets a row here from
-- the trigger below, in the transaction of the state change: a worker killed right
-- after its completion commit leaves the row behind, and any worker delivers it. The
-- body is built then, so every attempt (and a redelivery) sends the same bytes' content;
-- the id is the de-duplication key receivers get as X-VQ-Delivery.
-- A delivery is leased (locked_until) by the process sending it; attempts counts the
-- attempts begun, so a receiver that kills its caller still exhausts max_attempts.
CREATE TABLE vq.callback_deliveries (
    id uuid PRIMARY KEY DEFAULT vq.uuid_v7(),
    job_id uuid NOT NULL REFERENCES vq.jobs (id) ON DELETE CASCADE,
    url text NOT NULL,
    body jsonb NOT NULL,
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
-- The deliverers' claim walks the pending rows by due time; the job's details read by job.
CREATE INDEX callback_deliveries_due_idx ON vq.callback_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX callback_deliveries_job_idx ON vq.callback_deliveries (job_id);

-- Every attempt of every delivery, and every redelivery an admin asked for.
CREATE TABLE vq.callback_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id uuid NOT NULL REFERENCES vq.callback_deliveries (id) ON DELETE CASCADE,
    attempt integer NOT NULL CHECK (attempt >= 0),
    at timestamptz NOT NULL DEFAULT now(),
    status_code integer,
    outcome text NOT NULL CHECK (outcome IN ('delivered', 'retried', 'failed', 'redelivered')),
    detail text,
    worker_id text
);
CREATE INDEX callback_attempts_delivery_idx ON vq.callback_attempts (delivery_id, id);

CREATE FUNCTION vq.jobs_callback_outbox() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO vq.callback_deliveries (job_id, url, body)
    VALUES (NEW.id, NEW.callback_url, jsonb_build_object(
        'id', NEW.id,
        'job_type', NEW.job_type,
        'status', NEW.status,
        'result', NEW.result,
        'video_url', NEW.result->>'video_url',
        'error', CASE WHEN NEW.error IS NOT NULL THEN jsonb_build_object(
                     'category', NEW.error->>'type', 'message', NEW.error->>'message') END,
        'finished_at', coalesce(NEW.completed_at, now())));
    -- One notification per transaction whatever the number of rows: PostgreSQL folds
    -- identical ones.
    PERFORM pg_notify('vq_callbacks', '');
    RETURN NULL;
END;
$$;

-- The WHEN clause runs in the executor, no function call: a job without a callback URL
-- costs one NULL test per updated row.
CREATE TRIGGER jobs_callback_outbox AFTER UPDATE OF status ON vq.jobs
    FOR EACH ROW
    WHEN (NEW.callback_url IS NOT NULL
          AND NEW.status IN ('completed', 'failed', 'cancelled')
          AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION vq.jobs_callback_outbox();
