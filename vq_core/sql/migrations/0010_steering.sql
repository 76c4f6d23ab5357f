-- 0010: what operators steer the queue with.
--
-- Cluster-wide render capacity. job_queue_config gains max_running (running jobs of the
-- type, across every worker) and max_running_per_group (running jobs of one group of
-- the type); vq.service_limits caps the running jobs of a service. The claim enforces
-- all three itself (claim_limited_jobs in sql/queries/jobs.sql), so no worker's stale
-- view can overshoot. A claimed job now records the service it was routed to, which
-- is what a service's cap counts and what the job list filters by.
--
-- Fairness between students. A job may carry a group key (for a doubt, the student).
-- Its fair_seq is how many jobs of its group were queued or running when it arrived,
-- set by a trigger so every way in (the API, the CLI, plain SQL) gets it. The claim
-- orders by priority, then fair_seq, then run_at: within a priority every group's
-- first job comes before any group's second, so one student's 50 doubts do not hold
-- back the next student's one. Jobs without a key have fair_seq 0 and keep today's
-- order among themselves. The index on run_at serves the claims that take the
-- oldest ready jobs whatever their priority (docs/operations.md, "Fairness").
--
-- Who changed what. vq.config_changes keeps every change to a type's or a service's
-- settings with its actor and the way it came in (page, api, cli); job_queue_config
-- keeps the last actor for the page.

ALTER TABLE vq.jobs
    ADD COLUMN group_key text CHECK (group_key IS NULL OR length(group_key) BETWEEN 1 AND 200),
    ADD COLUMN fair_seq integer NOT NULL DEFAULT 0,
    ADD COLUMN service text;

ALTER TABLE vq.job_queue_config
    ADD COLUMN max_running integer CHECK (max_running IS NULL OR max_running > 0),
    ADD COLUMN max_running_per_group integer
        CHECK (max_running_per_group IS NULL OR max_running_per_group > 0),
    ADD COLUMN updated_by text;

CREATE TABLE vq.service_limits (
    service text PRIMARY KEY CHECK (service <> ''),
    max_running integer NOT NULL CHECK (max_running > 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text
);

CREATE TABLE vq.config_changes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    subject text NOT NULL,
    actor text NOT NULL,
    via text NOT NULL CHECK (via IN ('page', 'api', 'cli', 'sql')),
    changes jsonb NOT NULL
);
CREATE INDEX config_changes_subject_idx ON vq.config_changes (subject, id DESC);

CREATE FUNCTION vq.jobs_fair_seq() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    -- A row trigger sees the rows its statement inserted before this one, so a batch
    -- of one group numbers itself 0, 1, 2, ... after the group's jobs already waiting.
    SELECT count(*) INTO NEW.fair_seq
      FROM vq.jobs
     WHERE group_key = NEW.group_key AND status IN ('queued', 'running');
    RETURN NEW;
END;
$$;

CREATE TRIGGER jobs_fair_seq BEFORE INSERT ON vq.jobs
    FOR EACH ROW WHEN (NEW.group_key IS NOT NULL) EXECUTE FUNCTION vq.jobs_fair_seq();

CREATE INDEX jobs_group_active_idx ON vq.jobs (group_key)
    WHERE group_key IS NOT NULL AND status IN ('queued', 'running');

DROP INDEX vq.jobs_claim_idx;
CREATE INDEX jobs_claim_idx ON vq.jobs (priority, fair_seq, run_at) WHERE status = 'queued';
CREATE INDEX jobs_ready_idx ON vq.jobs (run_at) WHERE status = 'queued';

CREATE FUNCTION vq.notify_config_changed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    -- Workers reload their per-type settings at once instead of at the next poll.
    PERFORM pg_notify('vq_config', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER job_queue_config_notify AFTER INSERT OR UPDATE OR DELETE ON vq.job_queue_config
    FOR EACH STATEMENT EXECUTE FUNCTION vq.notify_config_changed();
CREATE TRIGGER service_limits_notify AFTER INSERT OR UPDATE OR DELETE ON vq.service_limits
    FOR EACH STATEMENT EXECUTE FUNCTION vq.notify_config_changed();
