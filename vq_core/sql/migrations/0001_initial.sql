-- 0001: the queue itself: jobs, their history, per-type configuration, workers.
CREATE SCHEMA IF NOT EXISTS vq;

CREATE TYPE vq.job_status AS ENUM ('queued', 'running', 'completed', 'failed', 'cancelled');

CREATE TABLE vq.job_queue_config (
    job_type      text PRIMARY KEY,
    max_retries   integer NOT NULL DEFAULT 3 CHECK (max_retries >= 0),
    timeout_s     double precision NOT NULL DEFAULT 600 CHECK (timeout_s > 0),
    service       text,
    concurrency   integer CHECK (concurrency IS NULL OR concurrency > 0),
    paused        boolean NOT NULL DEFAULT false,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE vq.jobs (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    job_type         text NOT NULL CHECK (job_type <> ''),
    -- 0 urgent, 1 high, 2 normal, 3 low: smaller is claimed first.
    priority         smallint NOT NULL DEFAULT 2 CHECK (priority BETWEEN 0 AND 3),
    status           vq.job_status NOT NULL DEFAULT 'queued',
    payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
    result           jsonb,
    error            jsonb,
    progress         jsonb,
    retry_count      integer NOT NULL DEFAULT 0,
    max_retries      integer NOT NULL DEFAULT 3 CHECK (max_retries >= 0),
    run_at           timestamptz NOT NULL DEFAULT now(),
    worker_id        text,
    lease_expires_at timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    idempotency_key  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    completed_at     timestamptz
);

-- The claim walks this index in order: highest priority, then oldest eligible.
CREATE INDEX jobs_claim_idx ON vq.jobs (priority, run_at) WHERE status = 'queued';
-- Lease recovery only ever looks at running jobs.
CREATE INDEX jobs_lease_idx ON vq.jobs (lease_expires_at) WHERE status = 'running';
CREATE UNIQUE INDEX jobs_idempotency_idx ON vq.jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The admin list pages by creation time; stats and pruning look at finish time.
CREATE INDEX jobs_created_idx ON vq.jobs (created_at DESC, id DESC);
CREATE INDEX jobs_completed_idx ON vq.jobs (completed_at) WHERE completed_at IS NOT NULL;

-- Append-only, read only by job (job_id, id). No foreign key and no primary-key
-- index: pruning deletes a job's events with it, and the hot path (a claim or a
-- completion of a batch) should not pay for FK checks or a second index.
CREATE TABLE vq.job_events (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    job_id     uuid NOT NULL,
    event      text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    worker_id  text,
    details    jsonb
);
CREATE INDEX job_events_job_idx ON vq.job_events (job_id, id);

CREATE TABLE vq.workers (
    id                   text PRIMARY KEY,
    hostname             text NOT NULL,
    pid                  integer NOT NULL,
    concurrency          integer NOT NULL,
    job_types            text[] NOT NULL DEFAULT '{}',
    status               text NOT NULL DEFAULT 'running',
    started_at           timestamptz NOT NULL DEFAULT now(),
    last_heartbeat       timestamptz NOT NULL DEFAULT now(),
    lease_seconds        double precision NOT NULL,
    jobs_in_flight       integer NOT NULL DEFAULT 0,
    jobs_completed       bigint NOT NULL DEFAULT 0,
    jobs_failed          bigint NOT NULL DEFAULT 0,
    consecutive_failures integer NOT NULL DEFAULT 0
);

-- The last health check of each video service, as the workers saw it; read by
-- the alert rules and the admin page.
CREATE TABLE vq.service_health (
    service      text PRIMARY KEY,
    healthy      boolean NOT NULL,
    checked_at   timestamptz NOT NULL DEFAULT now(),
    changed_at   timestamptz NOT NULL DEFAULT now(),
    detail       text,
    job_types    text[] NOT NULL DEFAULT '{}'
);

-- One notification per statement, not per row: a batch of 10,000 jobs wakes
-- the workers once.
CREATE FUNCTION vq.notify_jobs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vq_jobs', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notify_insert AFTER INSERT ON vq.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION vq.notify_jobs_inserted();
