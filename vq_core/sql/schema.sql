-- The vq schema after every migration, for reading: what the tables, indexes and
-- functions are now. Migrations (sql/migrations/) remain the source of truth;
-- tests/integration/test_migrations.py fails when this file and the migrations disagree.
-- Regenerate: pg_dump --schema-only --no-owner --no-privileges -n vq DB (then tidy).

CREATE SCHEMA vq;

CREATE TYPE vq.job_status AS ENUM (
    'queued',
    'running',
    'completed',
    'failed',
    'cancelled'
);

CREATE FUNCTION vq.notify_jobs_ready() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('vq_jobs', '');
    RETURN NULL;
END;
$$;

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

CREATE FUNCTION vq.notify_events_inserted() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('vq_events', '');
    RETURN NULL;
END;
$$;

CREATE FUNCTION vq.notify_config_changed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    -- Workers reload their per-type settings at once instead of at the next poll.
    PERFORM pg_notify('vq_config', '');
    RETURN NULL;
END;
$$;

CREATE FUNCTION vq.enqueue(
    job_type text,
    payload jsonb DEFAULT '{}'::jsonb,
    priority text DEFAULT 'normal',
    run_at timestamptz DEFAULT NULL,
    max_retries integer DEFAULT NULL,
    idempotency_key text DEFAULT NULL,
    group_key text DEFAULT NULL,
    callback_url text DEFAULT NULL
) RETURNS uuid
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_column
DECLARE
    rank smallint;
    payload_chars integer;
    url_parts text[];
    new_id uuid;
BEGIN
    -- The limits of vq_core/validation.py (JobRequest); keep the two in step.
    IF enqueue.job_type IS NULL OR enqueue.job_type !~ '^[A-Za-z0-9_.:-]{1,64}$' THEN
        RAISE EXCEPTION 'vq.enqueue: job_type: must match ^[A-Za-z0-9_.:-]{1,64}$'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'job_type';
    END IF;
    rank := CASE enqueue.priority
                WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 WHEN 'low' THEN 3
            END;
    IF rank IS NULL THEN
        RAISE EXCEPTION 'vq.enqueue: priority: must be one of urgent, high, normal, low'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'priority';
    END IF;
    IF enqueue.payload IS NULL OR pg_catalog.jsonb_typeof(enqueue.payload) <> 'object' THEN
        RAISE EXCEPTION 'vq.enqueue: payload: must be a JSON object, not %',
                        coalesce('a JSON ' || pg_catalog.jsonb_typeof(enqueue.payload), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'payload';
    END IF;
    -- As the API measures it: the length of the JSON text (here UTF-8 bytes, there
    -- characters with non-ASCII escaped; the same for ASCII payloads).
    payload_chars := pg_catalog.octet_length(enqueue.payload::text);
    IF payload_chars > 262144 THEN
        RAISE EXCEPTION 'vq.enqueue: payload: larger than 262144 bytes (% bytes)', payload_chars
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'payload';
    END IF;
    -- An object or array at path level 100 sits 101 deep (the payload itself is level
    -- 1). Each level costs at least two characters, so a short payload cannot be that
    -- deep and skips the walk: the usual payload pays one length, not a traversal.
    IF payload_chars >= 202 AND pg_catalog.jsonb_path_exists(
           enqueue.payload,
           'strict $.**{100} ? (@.type() == "object" || @.type() == "array")') THEN
        RAISE EXCEPTION 'vq.enqueue: payload: nested deeper than 100 levels'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'payload';
    END IF;
    -- timestamptz carries its zone; what it can hold that Python cannot is infinity,
    -- which would keep a job from ever running (or put it before every other).
    IF enqueue.run_at IS NOT NULL AND NOT pg_catalog.isfinite(enqueue.run_at) THEN
        RAISE EXCEPTION 'vq.enqueue: run_at: must be a finite time'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'run_at';
    END IF;
    IF enqueue.max_retries IS NOT NULL AND enqueue.max_retries NOT BETWEEN 0 AND 100 THEN
        RAISE EXCEPTION 'vq.enqueue: max_retries: must be between 0 and 100'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'max_retries';
    END IF;
    IF enqueue.idempotency_key IS NOT NULL
       AND pg_catalog.length(enqueue.idempotency_key) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'vq.enqueue: idempotency_key: must be 1 to 200 characters'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'idempotency_key';
    END IF;
    IF enqueue.group_key IS NOT NULL
       AND pg_catalog.length(enqueue.group_key) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'vq.enqueue: group_key: must be 1 to 200 characters'
            USING ERRCODE = 'invalid_parameter_value', COLUMN = 'group_key';
    END IF;
    -- The API's check_callback_url, but for callbacks.allowed_origins (a setting the
    -- database cannot read; the deliverer checks it before every attempt): a host, a
    -- port in range, no user:password@.
    IF enqueue.callback_url IS NOT NULL THEN
        url_parts := pg_catalog.regexp_match(
            enqueue.callback_url,
            '^https?://([^\s/?#@:\[\]]+|\[[0-9A-Fa-f:.]+\])(:([0-9]{1,5}))?([/?#]\S*)?$', 'i');
        IF pg_catalog.length(enqueue.callback_url) > 2000 OR url_parts IS NULL
           OR url_parts[3]::integer NOT BETWEEN 1 AND 65535 THEN
            RAISE EXCEPTION 'vq.enqueue: callback_url: must be an http:// or https:// URL of at most 2000 characters, with a host, a port from 1 to 65535 if any, and no user:password@'
                USING ERRCODE = 'invalid_parameter_value', COLUMN = 'callback_url';
        END IF;
    END IF;

    -- A loop for one rare case only: the job holding the key is deleted between the
    -- insert that conflicted with it and the read of its id; the next turn inserts.
    LOOP
        -- ON CONFLICT waits for a concurrent transaction holding the same key, so two
        -- callers racing with one key get one job between them.
        INSERT INTO vq.jobs AS j (id, job_type, priority, payload, run_at, max_retries,
                                  idempotency_key, group_key, callback_url)
        SELECT vq.uuid_v7(), enqueue.job_type, rank, enqueue.payload,
               coalesce(enqueue.run_at, pg_catalog.now()),
               coalesce(enqueue.max_retries, c.max_retries, 3),
               enqueue.idempotency_key, enqueue.group_key,
               coalesce(enqueue.callback_url, c.callback_url)
          FROM (SELECT 1) AS one
          LEFT JOIN vq.job_queue_config c ON c.job_type = enqueue.job_type
        ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING j.id INTO new_id;
        IF new_id IS NOT NULL THEN
            INSERT INTO vq.job_events (job_id, event, details)
            VALUES (new_id, 'created',
                    pg_catalog.jsonb_build_object('by', session_user::text, 'via', 'sql'));
            RETURN new_id;
        END IF;
        SELECT j.id INTO new_id FROM vq.jobs j WHERE j.idempotency_key = enqueue.idempotency_key;
        IF new_id IS NOT NULL THEN
            RETURN new_id;
        END IF;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION vq.enqueue(text, jsonb, text, timestamptz, integer, text, text, text) IS
    'Enqueue a job in the caller''s transaction; returns its id. docs/platform.md, "Enqueue from SQL".';

-- Not in pg_dump --no-privileges, but part of what 0014 builds: only roles granted
-- EXECUTE may enqueue.
REVOKE ALL ON FUNCTION vq.enqueue(text, jsonb, text, timestamptz, integer, text, text, text)
    FROM PUBLIC;

CREATE FUNCTION vq.uuid_v7() RETURNS uuid
    LANGUAGE plpgsql PARALLEL SAFE
    AS $$
DECLARE
    us bigint := (date_part('epoch', clock_timestamp()) * 1000000)::bigint;
BEGIN
    RETURN encode(substring(int8send(us / 1000) FROM 3)                         -- 48 bits: ms
                  || int2send((28672 + (us % 1000) * 4096 / 1000)::smallint)   -- 7, fraction
                  || substring(uuid_send(gen_random_uuid()) FROM 9),           -- variant, random
                  'hex')::uuid;
END
$$;

CREATE FUNCTION vq.job_counts_changed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO vq.job_counts AS c (job_type, status, priority, shard, n)
        SELECT job_type, status, priority, pg_backend_pid() % 16, count(*)
          FROM new_jobs
         WHERE status IN ('completed', 'failed', 'cancelled')
         GROUP BY job_type, status, priority
         ORDER BY job_type, status, priority  -- one lock order: no deadlock in a shard
        ON CONFLICT (job_type, status, priority, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSIF TG_OP = 'UPDATE' THEN
        -- A statement trigger: the rows' finished keys before count -1, after +1; a row
        -- whose key did not change nets to zero and writes nothing.
        INSERT INTO vq.job_counts AS c (job_type, status, priority, shard, n)
        SELECT job_type, status, priority, pg_backend_pid() % 16, sum(d)
          FROM (SELECT job_type, status, priority, -1 AS d FROM old_jobs
                 WHERE status IN ('completed', 'failed', 'cancelled')
                UNION ALL
                SELECT job_type, status, priority, 1 FROM new_jobs
                 WHERE status IN ('completed', 'failed', 'cancelled')) AS t
         GROUP BY job_type, status, priority
        HAVING sum(d) <> 0
         ORDER BY job_type, status, priority
        ON CONFLICT (job_type, status, priority, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO vq.job_counts AS c (job_type, status, priority, shard, n)
        SELECT job_type, status, priority, pg_backend_pid() % 16, -count(*)
          FROM old_jobs
         WHERE status IN ('completed', 'failed', 'cancelled')
         GROUP BY job_type, status, priority
         ORDER BY job_type, status, priority
        ON CONFLICT (job_type, status, priority, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSE  -- TRUNCATE
        DELETE FROM vq.job_counts;
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION vq.rebuild_job_counts() RETURNS bigint
    LANGUAGE plpgsql
    AS $$
DECLARE
    total bigint;
BEGIN
    -- SHARE mode waits for the transactions writing vq.jobs and holds new writers off
    -- until this transaction ends (readers go on), so no change is counted twice or
    -- missed; the recount reads every row (about a second at 1M jobs).
    LOCK TABLE vq.jobs IN SHARE MODE;
    DELETE FROM vq.job_counts;
    INSERT INTO vq.job_counts (job_type, status, priority, shard, n)
    SELECT job_type, status, priority, 0, count(*)
      FROM vq.jobs
     WHERE status IN ('completed', 'failed', 'cancelled')
     GROUP BY job_type, status, priority;
    SELECT coalesce(sum(n), 0) INTO total FROM vq.job_counts;
    RETURN total;
END;
$$;

CREATE FUNCTION vq.job_search_doc(job_type text, payload jsonb) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT strip(to_tsvector('simple', left(job_type, 1000) || ' '
                                       || left(coalesce(payload ->> 'question', ''), 60000) || ' '
                                       || left(coalesce(payload ->> 'topic', ''), 4000)))
$$;

CREATE FUNCTION vq.job_search_query(words text) RETURNS tsquery
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT string_agg('''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || ''':*',
                      ' & ')::tsquery
      FROM unnest(tsvector_to_array(to_tsvector('simple', left(words, 1000)))) AS lexeme
$$;

CREATE FUNCTION vq.job_search_changed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO vq.job_search (job_id, doc, job_priority, job_type)
        SELECT id, vq.job_search_doc(job_type, payload), priority, job_type FROM new_jobs;
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM vq.job_search s USING old_jobs o WHERE s.job_id = o.id;
    ELSE  -- TRUNCATE fires no DELETE trigger
        TRUNCATE vq.job_search;
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION vq.job_search_copies_changed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    UPDATE vq.job_search SET job_priority = NEW.priority, job_type = NEW.job_type
     WHERE job_id = NEW.id;
    RETURN NULL;
END;
$$;

CREATE TABLE vq.alert_deliveries (
    id bigint NOT NULL,
    notification uuid NOT NULL,
    alert_key text NOT NULL,
    alert_state text NOT NULL,
    sink text NOT NULL,
    sink_id bigint,
    installation_wide boolean NOT NULL,
    attempt integer NOT NULL,
    outcome text NOT NULL,
    detail text,
    at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT alert_deliveries_attempt_check CHECK ((attempt > 0)),
    CONSTRAINT alert_deliveries_outcome_check CHECK ((outcome = ANY (ARRAY['sent'::text, 'failed'::text, 'retried'::text])))
);

ALTER TABLE vq.alert_deliveries ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME vq.alert_deliveries_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE vq.alert_sinks (
    id bigint NOT NULL,
    name text NOT NULL,
    kind text NOT NULL,
    config jsonb DEFAULT '{}'::jsonb NOT NULL,
    secret text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    created_by text NOT NULL,
    CONSTRAINT alert_sinks_config_check CHECK ((jsonb_typeof(config) = 'object'::text)),
    CONSTRAINT alert_sinks_kind_check CHECK ((kind = ANY (ARRAY['webhook'::text, 'email'::text]))),
    CONSTRAINT alert_sinks_name_check CHECK ((name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'::text))
);

ALTER TABLE vq.alert_sinks ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME vq.alert_sinks_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE vq.alerts (
    key text NOT NULL,
    rule text NOT NULL,
    state text NOT NULL,
    summary text NOT NULL,
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    first_seen timestamp with time zone DEFAULT now() NOT NULL,
    last_seen timestamp with time zone DEFAULT now() NOT NULL,
    last_sent_at timestamp with time zone,
    resolved_at timestamp with time zone,
    send_count integer DEFAULT 0 NOT NULL,
    CONSTRAINT alerts_state_check CHECK ((state = ANY (ARRAY['firing'::text, 'resolved'::text])))
);

CREATE TABLE vq.api_tokens (
    id bigint NOT NULL,
    name text NOT NULL,
    token_hash text NOT NULL,
    role text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_used_at timestamp with time zone,
    revoked boolean DEFAULT false NOT NULL,
    CONSTRAINT api_tokens_name_check CHECK ((name ~ '^[A-Za-z0-9_.@:-]{1,64}$'::text)),
    CONSTRAINT api_tokens_role_check CHECK ((role = ANY (ARRAY['admin'::text, 'operator'::text, 'viewer'::text])))
);

ALTER TABLE vq.api_tokens ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME vq.api_tokens_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE vq.app_secrets (
    name text NOT NULL,
    value text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE vq.callback_attempts (
    id bigint NOT NULL,
    delivery_id uuid NOT NULL,
    attempt integer NOT NULL,
    at timestamp with time zone DEFAULT now() NOT NULL,
    status_code integer,
    outcome text NOT NULL,
    detail text,
    worker_id text,
    CONSTRAINT callback_attempts_attempt_check CHECK ((attempt >= 0)),
    CONSTRAINT callback_attempts_outcome_check CHECK ((outcome = ANY (ARRAY['delivered'::text, 'retried'::text, 'failed'::text, 'redelivered'::text])))
);

ALTER TABLE vq.callback_attempts ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME vq.callback_attempts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE vq.callback_deliveries (
    id uuid DEFAULT vq.uuid_v7() NOT NULL,
    job_id uuid NOT NULL,
    url text NOT NULL,
    body jsonb NOT NULL,
    state text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    locked_until timestamp with time zone,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    delivered_at timestamp with time zone,
    CONSTRAINT callback_deliveries_attempts_check CHECK ((attempts >= 0)),
    CONSTRAINT callback_deliveries_state_check CHECK ((state = ANY (ARRAY['pending'::text, 'delivered'::text, 'failed'::text])))
);

CREATE TABLE vq.config_changes (
    id bigint NOT NULL,
    at timestamp with time zone DEFAULT now() NOT NULL,
    subject text NOT NULL,
    actor text NOT NULL,
    via text NOT NULL,
    changes jsonb NOT NULL,
    CONSTRAINT config_changes_via_check CHECK ((via = ANY (ARRAY['page'::text, 'api'::text, 'cli'::text, 'sql'::text])))
);

ALTER TABLE vq.config_changes ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME vq.config_changes_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE vq.job_counts (
    job_type text NOT NULL,
    status vq.job_status NOT NULL,
    priority smallint NOT NULL,
    shard smallint NOT NULL,
    n bigint NOT NULL,
    CONSTRAINT job_counts_status_check CHECK ((status = ANY (ARRAY['completed'::vq.job_status, 'failed'::vq.job_status, 'cancelled'::vq.job_status])))
);

CREATE TABLE vq.job_events (
    id bigint NOT NULL,
    job_id uuid NOT NULL,
    event text NOT NULL,
    at timestamp with time zone DEFAULT now() NOT NULL,
    worker_id text,
    details jsonb
);

ALTER TABLE vq.job_events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME vq.job_events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE vq.job_queue_config (
    job_type text NOT NULL,
    max_retries integer DEFAULT 3 NOT NULL,
    timeout_s double precision DEFAULT 600 NOT NULL,
    service text,
    concurrency integer,
    paused boolean DEFAULT false NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    max_running integer,
    max_running_per_group integer,
    updated_by text,
    callback_url text,
    CONSTRAINT job_queue_config_callback_url_check CHECK (((callback_url IS NULL) OR (length(callback_url) <= 2000))),
    CONSTRAINT job_queue_config_concurrency_check CHECK (((concurrency IS NULL) OR (concurrency > 0))),
    CONSTRAINT job_queue_config_max_retries_check CHECK ((max_retries >= 0)),
    CONSTRAINT job_queue_config_max_running_check CHECK (((max_running IS NULL) OR (max_running > 0))),
    CONSTRAINT job_queue_config_max_running_per_group_check CHECK (((max_running_per_group IS NULL) OR (max_running_per_group > 0))),
    CONSTRAINT job_queue_config_timeout_s_check CHECK (((timeout_s > (0)::double precision) AND (timeout_s <> ALL (ARRAY['NaN'::double precision, 'Infinity'::double precision]))))
);

CREATE TABLE vq.job_search (
    job_id uuid NOT NULL,
    doc tsvector NOT NULL,
    job_priority smallint NOT NULL,
    job_type text NOT NULL
);

CREATE TABLE vq.jobs (
    id uuid DEFAULT vq.uuid_v7() NOT NULL,
    job_type text NOT NULL,
    priority smallint DEFAULT 2 NOT NULL,
    status vq.job_status DEFAULT 'queued'::vq.job_status NOT NULL,
    payload jsonb DEFAULT '{}'::jsonb NOT NULL,
    result jsonb,
    error jsonb,
    progress jsonb,
    retry_count integer DEFAULT 0 NOT NULL,
    max_retries integer DEFAULT 3 NOT NULL,
    run_at timestamp with time zone DEFAULT now() NOT NULL,
    worker_id text,
    lease_expires_at timestamp with time zone,
    cancel_requested boolean DEFAULT false NOT NULL,
    idempotency_key text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    started_at timestamp with time zone,
    completed_at timestamp with time zone,
    group_key text,
    fair_seq integer DEFAULT 0 NOT NULL,
    service text,
    callback_url text,
    trace_context jsonb,
    CONSTRAINT jobs_callback_url_check CHECK (((callback_url IS NULL) OR (length(callback_url) <= 2000))),
    CONSTRAINT jobs_group_key_check CHECK (((group_key IS NULL) OR ((length(group_key) >= 1) AND (length(group_key) <= 200)))),
    CONSTRAINT jobs_job_type_check CHECK ((job_type <> ''::text)),
    CONSTRAINT jobs_max_retries_check CHECK ((max_retries >= 0)),
    CONSTRAINT jobs_payload_check CHECK ((jsonb_typeof(payload) = 'object'::text)),
    CONSTRAINT jobs_priority_check CHECK (((priority >= 0) AND (priority <= 3))),
    CONSTRAINT jobs_trace_context_check CHECK (((trace_context IS NULL) OR (jsonb_typeof(trace_context) = 'object'::text)))
);

CREATE TABLE vq.login_failures (
    username text NOT NULL,
    ip text NOT NULL,
    at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE vq.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE vq.service_health (
    service text NOT NULL,
    healthy boolean NOT NULL,
    checked_at timestamp with time zone DEFAULT now() NOT NULL,
    changed_at timestamp with time zone DEFAULT now() NOT NULL,
    detail text,
    job_types text[] DEFAULT '{}'::text[] NOT NULL
);

CREATE TABLE vq.service_limits (
    service text NOT NULL,
    max_running integer NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_by text,
    CONSTRAINT service_limits_max_running_check CHECK ((max_running > 0)),
    CONSTRAINT service_limits_service_check CHECK ((service <> ''::text))
);

CREATE TABLE vq.sessions (
    id bigint NOT NULL,
    token_hash text NOT NULL,
    user_id bigint NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_seen_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    ip text NOT NULL,
    user_agent text DEFAULT ''::text NOT NULL
);

ALTER TABLE vq.sessions ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME vq.sessions_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE vq.users (
    id bigint NOT NULL,
    username text NOT NULL,
    password_hash text NOT NULL,
    role text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    disabled boolean DEFAULT false NOT NULL,
    CONSTRAINT users_password_hash_check CHECK ((password_hash ~~ '$argon2%'::text)),
    CONSTRAINT users_role_check CHECK ((role = ANY (ARRAY['admin'::text, 'operator'::text, 'viewer'::text]))),
    CONSTRAINT users_username_check CHECK ((username ~ '^[A-Za-z0-9_.@-]{1,64}$'::text))
);

ALTER TABLE vq.users ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME vq.users_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE vq.workers (
    id text NOT NULL,
    hostname text NOT NULL,
    pid integer NOT NULL,
    concurrency integer NOT NULL,
    job_types text[] DEFAULT '{}'::text[] NOT NULL,
    status text DEFAULT 'running'::text NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    last_heartbeat timestamp with time zone DEFAULT now() NOT NULL,
    lease_seconds double precision NOT NULL,
    jobs_in_flight integer DEFAULT 0 NOT NULL,
    jobs_completed bigint DEFAULT 0 NOT NULL,
    jobs_failed bigint DEFAULT 0 NOT NULL,
    consecutive_failures integer DEFAULT 0 NOT NULL
);

CREATE VIEW vq.client_jobs AS
SELECT j.id,
       j.job_type,
       (CASE j.priority WHEN 0 THEN 'urgent' WHEN 1 THEN 'high' WHEN 2 THEN 'normal'
                        ELSE 'low' END) AS priority,
       j.status,
       j.payload,
       j.result,
       j.error - 'stack' AS error,
       j.progress,
       j.retry_count,
       j.max_retries,
       j.run_at,
       j.idempotency_key,
       j.group_key,
       j.callback_url,
       j.created_at,
       j.updated_at,
       j.started_at,
       j.completed_at
  FROM vq.jobs j;

COMMENT ON VIEW vq.client_jobs IS
    'The jobs as a client reads them (no stack traces, no worker bookkeeping); docs/platform.md.';

ALTER TABLE ONLY vq.alert_deliveries
    ADD CONSTRAINT alert_deliveries_pkey PRIMARY KEY (id);

ALTER TABLE ONLY vq.alert_sinks
    ADD CONSTRAINT alert_sinks_name_key UNIQUE (name);

ALTER TABLE ONLY vq.alert_sinks
    ADD CONSTRAINT alert_sinks_pkey PRIMARY KEY (id);

ALTER TABLE ONLY vq.alerts
    ADD CONSTRAINT alerts_pkey PRIMARY KEY (key);

ALTER TABLE ONLY vq.api_tokens
    ADD CONSTRAINT api_tokens_pkey PRIMARY KEY (id);

ALTER TABLE ONLY vq.api_tokens
    ADD CONSTRAINT api_tokens_token_hash_key UNIQUE (token_hash);

ALTER TABLE ONLY vq.app_secrets
    ADD CONSTRAINT app_secrets_pkey PRIMARY KEY (name);

ALTER TABLE ONLY vq.callback_attempts
    ADD CONSTRAINT callback_attempts_pkey PRIMARY KEY (id);

ALTER TABLE ONLY vq.callback_deliveries
    ADD CONSTRAINT callback_deliveries_pkey PRIMARY KEY (id);

ALTER TABLE ONLY vq.config_changes
    ADD CONSTRAINT config_changes_pkey PRIMARY KEY (id);

ALTER TABLE ONLY vq.job_counts
    ADD CONSTRAINT job_counts_pkey PRIMARY KEY (job_type, status, priority, shard);

ALTER TABLE ONLY vq.job_events
    ADD CONSTRAINT job_events_pkey PRIMARY KEY (id);

ALTER TABLE ONLY vq.job_queue_config
    ADD CONSTRAINT job_queue_config_pkey PRIMARY KEY (job_type);

ALTER TABLE ONLY vq.job_search
    ADD CONSTRAINT job_search_pkey PRIMARY KEY (job_id);

ALTER TABLE ONLY vq.jobs
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY vq.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);

ALTER TABLE ONLY vq.service_health
    ADD CONSTRAINT service_health_pkey PRIMARY KEY (service);

ALTER TABLE ONLY vq.service_limits
    ADD CONSTRAINT service_limits_pkey PRIMARY KEY (service);

ALTER TABLE ONLY vq.sessions
    ADD CONSTRAINT sessions_pkey PRIMARY KEY (id);

ALTER TABLE ONLY vq.sessions
    ADD CONSTRAINT sessions_token_hash_key UNIQUE (token_hash);

ALTER TABLE ONLY vq.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);

ALTER TABLE ONLY vq.users
    ADD CONSTRAINT users_username_key UNIQUE (username);

ALTER TABLE ONLY vq.workers
    ADD CONSTRAINT workers_pkey PRIMARY KEY (id);

CREATE INDEX alert_deliveries_at_idx ON vq.alert_deliveries USING btree (at);

CREATE INDEX alert_deliveries_sink_idx ON vq.alert_deliveries USING btree (sink_id) WHERE (sink_id IS NOT NULL);

CREATE INDEX alerts_firing_idx ON vq.alerts USING btree (first_seen) WHERE (state = 'firing'::text);

CREATE INDEX alerts_resolved_idx ON vq.alerts USING btree (resolved_at) WHERE (state = 'resolved'::text);

CREATE UNIQUE INDEX api_tokens_live_name_idx ON vq.api_tokens USING btree (name) WHERE (NOT revoked);

CREATE INDEX job_events_job_idx ON vq.job_events USING btree (job_id, id);

CREATE INDEX callback_attempts_delivery_idx ON vq.callback_attempts USING btree (delivery_id, id);

CREATE INDEX callback_deliveries_due_idx ON vq.callback_deliveries USING btree (next_attempt_at) WHERE (state = 'pending'::text);

CREATE INDEX callback_deliveries_job_idx ON vq.callback_deliveries USING btree (job_id);

CREATE INDEX config_changes_subject_idx ON vq.config_changes USING btree (subject, id DESC);

CREATE INDEX job_search_doc_idx ON vq.job_search USING gin (doc);

CREATE INDEX job_search_priority_idx ON vq.job_search USING btree (job_priority, job_id);

CREATE INDEX job_search_type_idx ON vq.job_search USING btree (job_type, job_id);

CREATE INDEX jobs_claim_idx ON vq.jobs USING btree (priority, fair_seq, run_at) WHERE (status = 'queued'::vq.job_status);

CREATE INDEX jobs_group_active_idx ON vq.jobs USING btree (group_key) WHERE ((group_key IS NOT NULL) AND (status = ANY (ARRAY['queued'::vq.job_status, 'running'::vq.job_status])));

CREATE INDEX jobs_ready_idx ON vq.jobs USING btree (run_at) WHERE (status = 'queued'::vq.job_status);

CREATE INDEX jobs_completed_idx ON vq.jobs USING btree (completed_at) WHERE (completed_at IS NOT NULL);

CREATE INDEX jobs_failed_cancelled_idx ON vq.jobs USING btree (status, id DESC) WHERE (status = ANY (ARRAY['failed'::vq.job_status, 'cancelled'::vq.job_status]));

CREATE UNIQUE INDEX jobs_idempotency_idx ON vq.jobs USING btree (idempotency_key) WHERE (idempotency_key IS NOT NULL);

CREATE INDEX jobs_lease_idx ON vq.jobs USING btree (lease_expires_at) WHERE (status = 'running'::vq.job_status);

CREATE INDEX login_failures_at_idx ON vq.login_failures USING btree (at);

CREATE INDEX login_failures_key_idx ON vq.login_failures USING btree (username, ip, at);

CREATE INDEX sessions_expires_idx ON vq.sessions USING btree (expires_at);

CREATE INDEX sessions_user_idx ON vq.sessions USING btree (user_id);

CREATE TRIGGER job_queue_config_notify AFTER INSERT OR DELETE OR UPDATE ON vq.job_queue_config FOR EACH STATEMENT EXECUTE FUNCTION vq.notify_config_changed();

CREATE TRIGGER jobs_fair_seq BEFORE INSERT ON vq.jobs FOR EACH ROW WHEN ((new.group_key IS NOT NULL)) EXECUTE FUNCTION vq.jobs_fair_seq();

CREATE TRIGGER service_limits_notify AFTER INSERT OR DELETE OR UPDATE ON vq.service_limits FOR EACH STATEMENT EXECUTE FUNCTION vq.notify_config_changed();

CREATE TRIGGER jobs_callback_outbox AFTER UPDATE OF status ON vq.jobs FOR EACH ROW WHEN (((new.callback_url IS NOT NULL) AND (new.status = ANY (ARRAY['completed'::vq.job_status, 'failed'::vq.job_status, 'cancelled'::vq.job_status])) AND (old.status IS DISTINCT FROM new.status))) EXECUTE FUNCTION vq.jobs_callback_outbox();

CREATE TRIGGER job_events_notify_insert AFTER INSERT ON vq.job_events FOR EACH STATEMENT EXECUTE FUNCTION vq.notify_events_inserted();

CREATE TRIGGER jobs_notify_insert AFTER INSERT ON vq.jobs FOR EACH STATEMENT EXECUTE FUNCTION vq.notify_jobs_ready();

CREATE TRIGGER jobs_notify_ready AFTER UPDATE OF status, run_at ON vq.jobs FOR EACH ROW WHEN (((new.status = 'queued'::vq.job_status) AND (new.run_at <= now()) AND ((old.status <> 'queued'::vq.job_status) OR (old.run_at > now())))) EXECUTE FUNCTION vq.notify_jobs_ready();

CREATE TRIGGER jobs_counts_insert AFTER INSERT ON vq.jobs REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION vq.job_counts_changed();

CREATE TRIGGER jobs_counts_update AFTER UPDATE ON vq.jobs REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION vq.job_counts_changed();

CREATE TRIGGER jobs_counts_delete AFTER DELETE ON vq.jobs REFERENCING OLD TABLE AS old_jobs FOR EACH STATEMENT EXECUTE FUNCTION vq.job_counts_changed();

CREATE TRIGGER jobs_counts_truncate AFTER TRUNCATE ON vq.jobs FOR EACH STATEMENT EXECUTE FUNCTION vq.job_counts_changed();

CREATE TRIGGER jobs_search_update AFTER UPDATE OF priority, job_type ON vq.jobs FOR EACH ROW WHEN (((old.priority IS DISTINCT FROM new.priority) OR (old.job_type IS DISTINCT FROM new.job_type))) EXECUTE FUNCTION vq.job_search_copies_changed();

CREATE TRIGGER jobs_search_insert AFTER INSERT ON vq.jobs REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION vq.job_search_changed();

CREATE TRIGGER jobs_search_delete AFTER DELETE ON vq.jobs REFERENCING OLD TABLE AS old_jobs FOR EACH STATEMENT EXECUTE FUNCTION vq.job_search_changed();

CREATE TRIGGER jobs_search_truncate AFTER TRUNCATE ON vq.jobs FOR EACH STATEMENT EXECUTE FUNCTION vq.job_search_changed();

ALTER TABLE ONLY vq.alert_deliveries
    ADD CONSTRAINT alert_deliveries_sink_id_fkey FOREIGN KEY (sink_id) REFERENCES vq.alert_sinks(id) ON DELETE SET NULL;

ALTER TABLE ONLY vq.callback_attempts
    ADD CONSTRAINT callback_attempts_delivery_id_fkey FOREIGN KEY (delivery_id) REFERENCES vq.callback_deliveries(id) ON DELETE CASCADE;

ALTER TABLE ONLY vq.callback_deliveries
    ADD CONSTRAINT callback_deliveries_job_id_fkey FOREIGN KEY (job_id) REFERENCES vq.jobs(id) ON DELETE CASCADE;

ALTER TABLE ONLY vq.sessions
    ADD CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES vq.users(id) ON DELETE CASCADE;
