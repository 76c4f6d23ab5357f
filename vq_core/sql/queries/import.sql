-- vq import: the rows of a first-version `jobs` table moved into vq.jobs
-- (vq_core/store/importing.py, docs/platform.md "Importing the first version's jobs").
-- The table's name is never formatted in as given: import_find_table looks it up in
-- pg_catalog and PostgreSQL quotes it (format's %I, quote_ident's rules); only that
-- quoted name fills {table}. The other {placeholders} of import_read_rows come from a
-- fixed whitelist in importing.py (a column's cast, or a typed NULL when it is absent).

-- import_find_table --
-- The relation named by schema $1 and name $2 (as stored, after case folding), quoted by PostgreSQL.
SELECT c.oid::bigint AS oid,
       n.nspname AS schema_name,
       c.relname AS table_name,
       format('%I.%I', n.nspname, c.relname) AS quoted,
       c.relkind::text AS kind
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = $1 AND c.relname = $2;

-- import_table_columns --
-- The live columns of relation $1 (an oid) with their type's category (D: date/time).
SELECT a.attname AS name,
       t.typcategory::text AS category,
       format_type(a.atttypid, a.atttypmod) AS type
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
 WHERE a.attrelid = $1::bigint::oid AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum;

-- import_read_rows --
-- Every row of the first-version table in id order, its values as text (parsed and
-- checked in Python, so one bad value refuses its row instead of failing the query).
SELECT old.id::text AS id,
       old.job_type::text AS job_type,
       old.priority::text AS priority,
       old.status::text AS status,
       old.payload::text AS payload,
       old.retry_count::text AS retry_count,
       old.max_retries::text AS max_retries,
       old.error_message::text AS error_message,
       {result} AS result,
       {video_url} AS video_url,
       {created_at} AS created_at,
       {updated_at} AS updated_at,
       {started_at} AS started_at,
       {completed_at} AS completed_at
  FROM {table} AS old
 -- old.id, not the text alias id: numbers in their order (2 before 10).
 ORDER BY old.id;

-- import_jobs --
-- Insert a batch of imported jobs (one JSON array, $1) with a 'created' event each;
-- a job whose idempotency key (import:<schema.table>:<id>) is taken already is skipped.
-- Answers the keys inserted. $2: the retry limit when neither the row nor its type has one.
WITH input AS (
    SELECT *
      FROM jsonb_to_recordset($1::jsonb)
           AS t(idempotency_key text, job_type text, priority smallint, status vq.job_status,
                payload jsonb, result jsonb, error jsonb, retry_count integer,
                max_retries integer, created_at timestamptz, updated_at timestamptz,
                started_at timestamptz, completed_at timestamptz, details jsonb)
),
inserted AS (
    INSERT INTO vq.jobs (job_type, priority, status, payload, result, error, retry_count,
                         max_retries, run_at, idempotency_key, created_at, updated_at,
                         started_at, completed_at)
    SELECT i.job_type, i.priority, i.status, i.payload, i.result, i.error, i.retry_count,
           coalesce(i.max_retries, c.max_retries, $2::integer),
           -- A queued job keeps its place: it has been waiting since it was created.
           coalesce(i.created_at, now()),
           i.idempotency_key,
           coalesce(i.created_at, now()),
           coalesce(i.updated_at, i.created_at, now()),
           i.started_at,
           CASE WHEN i.status <> 'queued'
                THEN coalesce(i.completed_at, i.updated_at, i.created_at, now()) END
      FROM input i
      LEFT JOIN vq.job_queue_config c ON c.job_type = i.job_type
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, idempotency_key
),
events AS (
    INSERT INTO vq.job_events (job_id, event, details)
    SELECT ins.id, 'created', i.details
      FROM inserted ins
      JOIN input i ON i.idempotency_key = ins.idempotency_key
)
SELECT idempotency_key FROM inserted;

-- import_existing_keys --
-- Which of the keys $1 vq holds already (a dry run's "already imported").
SELECT idempotency_key FROM vq.jobs WHERE idempotency_key = ANY($1::text[]);
