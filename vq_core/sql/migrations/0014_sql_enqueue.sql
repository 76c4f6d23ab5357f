-- 0014: enqueue from SQL, in the caller's own transaction.
--
-- vq.enqueue(job_type, payload, priority => ..., run_at => ..., max_retries => ...,
-- idempotency_key => ..., group_key => ..., callback_url => ...) returns the new job's
-- id. The learning platform calls it inside the transaction that stores its own row
-- (the student's doubt), so the doubt and its job commit together or not at all; the
-- insert trigger of 0007 wakes idle workers at that commit (NOTIFY is transactional)
-- and the fair_seq trigger of 0010 numbers the job in its group, as for any insert.
--
-- It checks what the API's JobRequest checks, with the same limits, and refuses with
-- SQLSTATE 22023 (invalid_parameter_value), a message "vq.enqueue: <parameter>: ..."
-- and the parameter's name in the error's COLUMN field. It stores the row and its
-- 'created' event (details: by = the session's role, via = 'sql'), takes max_retries
-- and callback_url from vq.job_queue_config when not given (max_retries 3 otherwise,
-- the default of the default_max_retries setting), and answers a repeated
-- idempotency key with the existing job's id.
--
-- SECURITY DEFINER, so a role granted only EXECUTE on it (and SELECT on
-- vq.client_jobs) may enqueue without any right on vq.jobs itself: docs/platform.md,
-- "Enqueue from SQL". The fixed search_path and fully qualified names keep a caller's
-- own objects (a function or operator named like one used here) out of it.
--
-- vq.client_jobs is the jobs table as a client reads it: priorities by name, errors
-- without their stack traces (as the API shows them to everyone but admins), none of
-- the worker's bookkeeping (lease, worker, claim order).

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

-- Functions are executable by PUBLIC unless revoked: only roles granted EXECUTE may
-- enqueue (a role given USAGE on vq to read its jobs must not gain it by default).
REVOKE ALL ON FUNCTION vq.enqueue(text, jsonb, text, timestamptz, integer, text, text, text)
    FROM PUBLIC;

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
