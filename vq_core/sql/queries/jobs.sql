-- Jobs and their history (vq.jobs, vq.job_events): submit, claim, renew leases, complete,
-- fail, progress, cancel, retry, release, recover expired leases, read, list and prune.
-- One named block per query: "-- name --", then a one-line purpose. vq_core.db.queries
-- loads every file of this folder once; a name may appear in only one of them.
-- Parameters are always bound, never formatted in, except list_jobs' keyset condition
-- and ORDER BY, filled from a fixed whitelist in vq_core/store/listing.py.

-- enqueue_jobs --
-- Insert a batch without idempotency keys, log 'created', return the new ids in input order.
-- A job without a callback URL gets its type's default (vq.job_queue_config.callback_url).
-- The batch arrives as one JSON array of columns ($1): [job_types, priorities, payloads,
-- run_ats, max_retries, group_keys, callback_urls, trace_contexts], each a list in input
-- order, or [] when no job sets it (ROWS FROM pads a shorter list with NULLs). One
-- parameter to encode, and a sixth of the bytes of one object per job: parsing the
-- document was an eighth of the statement (docs/performance.md, "Batch enqueue").
-- The ids are vq.uuid_v7()'s (migration 0006), computed inline from one clock read per
-- row (the OFFSET 0 subquery): calling the PL/pgSQL function once per row cost more
-- than the whole id. Keep the two layouts the same.
WITH input AS MATERIALIZED (
    SELECT encode(substring(int8send(t.us / 1000) FROM 3)                        -- 48 bits: ms
                  || int2send((28672 + (t.us % 1000) * 4096 / 1000)::smallint)   -- 7, fraction
                  || substring(uuid_send(gen_random_uuid()) FROM 9),             -- variant, random
                  'hex')::uuid AS id,
           t.*
      FROM (SELECT (date_part('epoch', clock_timestamp()) * 1000000)::bigint AS us, c.*
              FROM ROWS FROM (jsonb_array_elements_text($1::jsonb -> 0),
                              jsonb_array_elements_text($1::jsonb -> 1),
                              jsonb_array_elements($1::jsonb -> 2),
                              jsonb_array_elements_text($1::jsonb -> 3),
                              jsonb_array_elements_text($1::jsonb -> 4),
                              jsonb_array_elements_text($1::jsonb -> 5),
                              jsonb_array_elements_text($1::jsonb -> 6),
                              jsonb_array_elements($1::jsonb -> 7))
                   WITH ORDINALITY AS c(job_type, priority, payload, run_at, max_retries,
                                        group_key, callback_url, trace_context, ord)
            OFFSET 0) t
),
inserted AS (
    INSERT INTO vq.jobs (id, job_type, priority, payload, run_at, max_retries, group_key,
                         callback_url, trace_context)
    -- A JSON null in a payload or trace list is jsonb 'null', not SQL NULL: nullif.
    SELECT i.id, i.job_type, i.priority::smallint,
           coalesce(nullif(i.payload, 'null'::jsonb), '{}'::jsonb),
           coalesce(i.run_at::timestamptz, now()),
           coalesce(i.max_retries::integer, c.max_retries, $2::integer),
           i.group_key, coalesce(i.callback_url, c.callback_url),
           nullif(i.trace_context, 'null'::jsonb)
      FROM input i
      LEFT JOIN vq.job_queue_config c ON c.job_type = i.job_type
     ORDER BY i.ord
    RETURNING id
),
events AS (
    INSERT INTO vq.job_events (job_id, event)
    SELECT id, 'created' FROM inserted
)
SELECT id FROM input ORDER BY ord;

-- enqueue_jobs_keyed --
-- Insert a batch, skip idempotency-key duplicates, log 'created'. MATERIALIZED: each
-- row's id is made once, so the inserted rows can be matched back to the input.
-- A job without a callback URL gets its type's default ($9: the jobs' own).
-- $10: the jobs' trace contexts, or NULL when traces are off (unnest pads it with NULLs).
WITH input AS MATERIALIZED (
    SELECT vq.uuid_v7() AS id, t.*
      FROM unnest($1::text[], $2::smallint[], $3::jsonb[], $4::timestamptz[],
                  $5::integer[], $6::text[], $8::text[], $9::text[], $10::jsonb[])
           WITH ORDINALITY AS t(job_type, priority, payload, run_at, max_retries,
                                idempotency_key, group_key, callback_url, trace_context, ord)
),
inserted AS (
    INSERT INTO vq.jobs (id, job_type, priority, payload, run_at, max_retries, idempotency_key,
                         group_key, callback_url, trace_context)
    SELECT i.id, i.job_type, i.priority, i.payload, coalesce(i.run_at, now()),
           coalesce(i.max_retries, c.max_retries, $7::integer), i.idempotency_key, i.group_key,
           coalesce(i.callback_url, c.callback_url), i.trace_context
      FROM input i
      LEFT JOIN vq.job_queue_config c ON c.job_type = i.job_type
     ORDER BY i.ord
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id
),
events AS (
    INSERT INTO vq.job_events (job_id, event)
    SELECT id, 'created' FROM inserted
)
SELECT i.ord, coalesce(ins.id, existing.id) AS id, ins.id IS NOT NULL AS created
  FROM input i
  LEFT JOIN inserted ins ON ins.id = i.id
  LEFT JOIN vq.jobs existing
         ON ins.id IS NULL AND existing.idempotency_key = i.idempotency_key
 ORDER BY i.ord;

-- ids_by_idempotency_key --
-- Resolve keys whose job was inserted by a concurrent transaction.
SELECT idempotency_key, id FROM vq.jobs WHERE idempotency_key = ANY($1::text[]);

-- claim_lock --
-- Serialise the claims that count running jobs against a cluster-wide cap: the next
-- statement's snapshot then sees every claim committed before this one. Held to commit.
SELECT pg_advisory_xact_lock(hashtextextended('vq.claim_limits', 0));

-- claim_jobs --
-- Take up to $4 eligible jobs of the given types ($2, routed to the services $3), in
-- {order}, with a lease. Types that are paused or have a cluster-wide cap in the
-- database are left to claim_limited_jobs, whatever this worker last read.
WITH route AS (
    SELECT t.job_type, t.service
      FROM unnest($2::text[], $3::text[]) AS t(job_type, service)
     WHERE NOT EXISTS (SELECT 1 FROM vq.job_queue_config c
                        WHERE c.job_type = t.job_type
                          AND (c.paused OR c.max_running IS NOT NULL
                               OR c.max_running_per_group IS NOT NULL))
       AND NOT EXISTS (SELECT 1 FROM vq.service_limits s WHERE s.service = t.service)
),
claimed AS (
    UPDATE vq.jobs j
       SET status = 'running',
           worker_id = $1,
           service = r.service,
           started_at = now(),
           updated_at = now(),
           lease_expires_at = now() + make_interval(secs => $5::float8)
      FROM route r
     WHERE r.job_type = j.job_type
       AND j.id = ANY(ARRAY(
               SELECT q.id
                 FROM vq.jobs q
                WHERE q.status = 'queued'
                  AND q.run_at <= now()
                  AND q.job_type = ANY(ARRAY(SELECT job_type FROM route))
                ORDER BY {order}
                LIMIT $4
                  FOR UPDATE SKIP LOCKED))
    RETURNING j.id, j.job_type, j.priority, j.payload, j.retry_count, j.max_retries,
              j.created_at, j.trace_context
),
events AS (
    INSERT INTO vq.job_events (job_id, event, worker_id)
    SELECT id, 'claimed', $1 FROM claimed
)
SELECT * FROM claimed;

-- claim_limited_jobs --
-- Take up to $4 jobs of types with a cluster-wide cap (per type, per group of a type,
-- per service), never more than the caps leave room for. Run after claim_lock, in
-- its transaction. Candidates are the first $6 eligible jobs in {order}, groups at
-- their cap left out; within them each cap keeps the first jobs that fit.
WITH route AS (
    SELECT t.job_type, t.service, c.max_running AS type_cap,
           c.max_running_per_group AS group_cap, s.max_running AS service_cap
      FROM unnest($2::text[], $3::text[]) AS t(job_type, service)
      LEFT JOIN vq.job_queue_config c ON c.job_type = t.job_type
      LEFT JOIN vq.service_limits s ON s.service = t.service
     WHERE NOT coalesce(c.paused, false)
),
running AS MATERIALIZED (
    SELECT x.job_type, x.service, x.group_key FROM vq.jobs x WHERE x.status = 'running'
),
room AS (
    SELECT r.job_type, r.service, r.group_cap,
           r.type_cap - (SELECT count(*) FROM running x WHERE x.job_type = r.job_type)
               AS type_room,
           r.service_cap - (SELECT count(*) FROM running x WHERE x.service = r.service)
               AS service_room
      FROM route r
),
group_running AS (
    SELECT x.job_type, x.group_key, count(*) AS n
      FROM running x JOIN room r ON r.job_type = x.job_type
     WHERE x.group_key IS NOT NULL AND r.group_cap IS NOT NULL
     GROUP BY x.job_type, x.group_key
),
candidates AS (
    SELECT q.id, q.job_type, q.group_key, q.priority, q.fair_seq, q.run_at
      FROM vq.jobs q
     WHERE q.status = 'queued'
       AND q.run_at <= now()
       AND q.job_type = ANY(ARRAY(SELECT job_type FROM room
                                   WHERE coalesce(type_room, 1) > 0
                                     AND coalesce(service_room, 1) > 0))
       AND NOT EXISTS (SELECT 1 FROM group_running g JOIN room r USING (job_type)
                        WHERE g.job_type = q.job_type AND g.group_key = q.group_key
                          AND g.n >= r.group_cap)
     ORDER BY {order}
     LIMIT $6
),
in_group AS (
    SELECT c.*, r.service, r.group_cap, r.type_room, r.service_room,
           coalesce(g.n, 0) AS group_running,
           row_number() OVER (PARTITION BY c.job_type, c.group_key ORDER BY {order}) AS group_n
      FROM candidates c
      JOIN room r ON r.job_type = c.job_type
      LEFT JOIN group_running g ON g.job_type = c.job_type AND g.group_key = c.group_key
),
group_fits AS (
    SELECT i.*,
           row_number() OVER (PARTITION BY i.job_type ORDER BY {order}) AS type_n,
           row_number() OVER (PARTITION BY i.service ORDER BY {order}) AS service_n
      FROM in_group i
     WHERE i.group_key IS NULL OR i.group_cap IS NULL
        OR i.group_n <= i.group_cap - i.group_running
),
chosen AS (
    SELECT f.id, f.service
      FROM group_fits f
     WHERE (f.type_room IS NULL OR f.type_n <= f.type_room)
       AND (f.service_room IS NULL OR f.service_n <= f.service_room)
     ORDER BY {order}
     LIMIT $4
),
claimed AS (
    UPDATE vq.jobs j
       SET status = 'running',
           worker_id = $1,
           service = c.service,
           started_at = now(),
           updated_at = now(),
           lease_expires_at = now() + make_interval(secs => $5::float8)
      FROM chosen c
     WHERE j.id = c.id AND j.status = 'queued'
    RETURNING j.id, j.job_type, j.priority, j.payload, j.retry_count, j.max_retries,
              j.created_at, j.trace_context
),
events AS (
    INSERT INTO vq.job_events (job_id, event, worker_id)
    SELECT id, 'claimed', $1 FROM claimed
)
SELECT * FROM claimed;

-- renew_leases --
-- Extend the leases of a worker's jobs in flight; report which are still its and any cancel asks.
UPDATE vq.jobs
   SET lease_expires_at = now() + make_interval(secs => $3::float8)
 WHERE id = ANY($2::uuid[]) AND worker_id = $1 AND status = 'running'
RETURNING id, cancel_requested;

-- complete_jobs --
-- Mark a batch completed with results (copying the video fields into the payload too);
-- answer the ids that were no longer this worker's (lease lost), usually none. The
-- results come as one JSON array ($3): one value to encode, not one per job.
-- A job this worker completed already counts as done, not lost: a retry after a lost
-- reply must not report a completion the database holds. Completed jobs keep their
-- worker_id, and nothing moves a completed job on, so the pair is proof enough. The
-- current error goes (the failed attempts' events keep theirs).
WITH input AS (
    SELECT * FROM ROWS FROM (unnest($2::uuid[]), jsonb_array_elements($3::jsonb)) AS t(id, result)
),
done AS (
    UPDATE vq.jobs j
       SET status = 'completed',
           result = i.result,
           payload = CASE WHEN i.result ? 'video_url'
                          THEN j.payload || jsonb_strip_nulls(jsonb_build_object(
                              'video_url', i.result -> 'video_url',
                              'thumbnail_url', i.result -> 'thumbnail_url',
                              'duration', i.result -> 'duration'))
                          ELSE j.payload END,
           error = NULL,
           completed_at = now(),
           updated_at = now(),
           lease_expires_at = NULL
      FROM input i
     WHERE j.id = i.id AND j.worker_id = $1 AND j.status = 'running'
    RETURNING j.id
),
events AS (
    INSERT INTO vq.job_events (job_id, event, worker_id)
    SELECT id, 'completed', $1 FROM done
),
counters AS (
    UPDATE vq.workers
       SET jobs_completed = jobs_completed + (SELECT count(*) FROM done),
           consecutive_failures = 0
     WHERE id = $1
),
-- MATERIALIZED: the jobs table is read only for the jobs done missed, none as a rule.
missed AS MATERIALIZED (
    SELECT i.id FROM input i WHERE NOT EXISTS (SELECT 1 FROM done d WHERE d.id = i.id)
)
-- The statement's snapshot predates done, so this sees earlier completions only.
SELECT m.id
  FROM missed m
 WHERE NOT EXISTS (SELECT 1 FROM vq.jobs j
                    WHERE j.id = m.id AND j.worker_id = $1 AND j.status = 'completed');

-- fail_job --
-- Record a failed attempt: back to the queue after $4 seconds, or failed for good when $4 is NULL.
-- $5: whether the failure is the worker's or its service's (a bad payload is not): only
-- those make a streak of consecutive_failures, which the worker_failures alert watches.
WITH failed AS (
    UPDATE vq.jobs
       SET status = CASE WHEN $4::float8 IS NULL THEN 'failed' ELSE 'queued' END::vq.job_status,
           retry_count = retry_count + CASE WHEN $4::float8 IS NULL THEN 0 ELSE 1 END,
           run_at = CASE WHEN $4::float8 IS NULL THEN run_at
                         ELSE now() + make_interval(secs => $4::float8) END,
           completed_at = CASE WHEN $4::float8 IS NULL THEN now() END,
           error = $3::jsonb,
           worker_id = NULL,
           lease_expires_at = NULL,
           updated_at = now()
     WHERE id = $2 AND worker_id = $1 AND status = 'running'
    RETURNING id, status, run_at
),
events AS (
    INSERT INTO vq.job_events (job_id, event, worker_id, details)
    SELECT id, CASE WHEN status = 'failed' THEN 'failed' ELSE 'retry_scheduled' END, $1,
           $3::jsonb || jsonb_build_object('run_at', run_at)
      FROM failed
),
counters AS (
    UPDATE vq.workers
       SET jobs_failed = jobs_failed + 1,
           consecutive_failures = consecutive_failures + CASE WHEN $5::boolean THEN 1 ELSE 0 END
     WHERE id = $1 AND EXISTS (SELECT 1 FROM failed)
)
SELECT status::text AS status, run_at FROM failed;

-- update_progress --
-- Store a running job's progress (percent and stage) and log it.
WITH updated AS (
    UPDATE vq.jobs
       SET progress = $3::jsonb, updated_at = now()
     WHERE id = $2 AND worker_id = $1 AND status = 'running'
    RETURNING id
)
INSERT INTO vq.job_events (job_id, event, worker_id, details)
SELECT id, 'progress', $1, $3::jsonb FROM updated
RETURNING job_id;

-- cancel_job --
-- Cancel a queued job at once; ask a running job's worker to stop it.
WITH target AS (
    SELECT id, status FROM vq.jobs WHERE id = $1 AND status IN ('queued', 'running') FOR UPDATE
),
updated AS (
    UPDATE vq.jobs j
       SET status = CASE WHEN t.status = 'queued' THEN 'cancelled' ELSE 'running' END::vq.job_status,
           cancel_requested = (t.status = 'running'),
           completed_at = CASE WHEN t.status = 'queued' THEN now() END,
           updated_at = now()
      FROM target t
     WHERE j.id = t.id
    RETURNING j.id, j.status::text AS status, j.worker_id
),
events AS (
    INSERT INTO vq.job_events (job_id, event, details)
    SELECT id, CASE WHEN status = 'cancelled' THEN 'cancelled' ELSE 'cancel_requested' END, $2::jsonb
      FROM updated
)
SELECT id, status, worker_id FROM updated;

-- notify_cancel --
-- Tell the worker running a job to abort it now rather than at its next lease renewal.
SELECT pg_notify('vq_cancel', $1::text);

-- mark_cancelled --
-- A worker stopped a job it was asked to cancel.
WITH updated AS (
    UPDATE vq.jobs
       SET status = 'cancelled', completed_at = now(), updated_at = now(),
           worker_id = NULL, lease_expires_at = NULL, error = $3::jsonb
     WHERE id = $2 AND worker_id = $1 AND status = 'running'
    RETURNING id
)
INSERT INTO vq.job_events (job_id, event, worker_id)
SELECT id, 'cancelled', $1 FROM updated
RETURNING job_id;

-- retry_job --
-- An operator sends a failed or cancelled job back to the queue with a fresh set of retries.
WITH updated AS (
    UPDATE vq.jobs
       SET status = 'queued', run_at = now(), retry_count = 0, error = NULL, result = NULL,
           progress = NULL, cancel_requested = false, completed_at = NULL, started_at = NULL,
           worker_id = NULL, lease_expires_at = NULL, updated_at = now()
     WHERE id = $1 AND status IN ('failed', 'cancelled')
    RETURNING id
)
INSERT INTO vq.job_events (job_id, event, details)
SELECT id, 'retried', $2::jsonb FROM updated
RETURNING job_id;

-- release_jobs --
-- Hand a stopping worker's unfinished jobs back to the queue, keeping their place.
WITH released AS (
    UPDATE vq.jobs
       SET status = 'queued', worker_id = NULL, lease_expires_at = NULL, updated_at = now()
     WHERE id = ANY($2::uuid[]) AND worker_id = $1 AND status = 'running'
    RETURNING id
)
INSERT INTO vq.job_events (job_id, event, worker_id)
SELECT id, 'released', $1 FROM released
RETURNING job_id;

-- recover_expired_leases --
-- Put running jobs whose worker stopped renewing back in the queue (or finish a cancel).
WITH expired AS (
    SELECT id, worker_id
      FROM vq.jobs
     WHERE status = 'running' AND lease_expires_at < now()
       FOR UPDATE SKIP LOCKED
),
recovered AS (
    UPDATE vq.jobs j
       SET status = CASE WHEN j.cancel_requested THEN 'cancelled' ELSE 'queued' END::vq.job_status,
           completed_at = CASE WHEN j.cancel_requested THEN now() END,
           worker_id = NULL, lease_expires_at = NULL, updated_at = now()
      FROM expired e
     WHERE j.id = e.id
    RETURNING j.id, j.status::text AS status, e.worker_id
),
events AS (
    INSERT INTO vq.job_events (job_id, event, details)
    SELECT id, 'lease_expired', jsonb_build_object('worker_id', worker_id, 'status', status)
      FROM recovered
)
SELECT id, status, worker_id FROM recovered;

-- get_job --
-- One job by id.
SELECT * FROM vq.jobs WHERE id = $1;

-- get_job_events --
-- A job's history, oldest first.
SELECT id, job_id, event, at, worker_id, details
  FROM vq.job_events WHERE job_id = $1 ORDER BY id;

-- job_filter --
-- The job list's filters, shared by list_jobs, list_jobs_among, count_jobs and the bulk
-- actions ({filter} in them): $1 status, $2 type, $3 priority, $4 words of the type,
-- question or topic (each word a prefix: vq.job_search_query, migration 0017), $5 error
-- category (error.type, as the worker records it), $6 service, $7 group, $8 and $9
-- created from and before. The words are looked up per job by its key in vq.job_search:
-- cheap while the walk finds a page soon, that is while the words are common; rare
-- words go through search_job_ids first (Store.list_jobs). The type is named with its
-- table: vq.job_search, joined in list_jobs_of_type and list_jobs_by_priority, has one too.
    ($1::vq.job_status IS NULL OR status = $1::vq.job_status)
AND ($2::text IS NULL OR vq.jobs.job_type = $2::text)
AND ($3::smallint IS NULL OR priority = $3::smallint)
AND ($4::text IS NULL
     OR EXISTS (SELECT 1 FROM vq.job_search s
                 WHERE s.job_id = vq.jobs.id
                   -- a sub-select: the query is made once, not once per job probed
                   AND s.doc @@ (SELECT vq.job_search_query($4::text))))
AND ($5::text IS NULL OR error ->> 'type' = $5::text)
AND ($6::text IS NULL OR service = $6::text)
AND ($7::text IS NULL OR group_key = $7::text)
AND ($8::timestamptz IS NULL OR created_at >= $8::timestamptz)
AND ($9::timestamptz IS NULL OR created_at < $9::timestamptz)

-- list_jobs --
-- One page of the job list, filtered, in keyset order ({after} and {order} from a
-- whitelist: by id alone for creation order, else by (column, id)).
SELECT *
  FROM vq.jobs
 WHERE {filter}
   AND ($10::text IS NULL OR {after})
 ORDER BY {order}
 LIMIT $12;

-- list_jobs_of_type --
-- list_jobs for one type ($2), newest or oldest first or by update time: the walk goes
-- through vq.job_search's (job_type, job_id) index (migration 0018), each job joined by
-- its key. The join names both columns, so the planner takes vq.jobs' own indexes
-- instead when a filter is narrower (failed, cancelled, queued).
SELECT vq.jobs.*
  FROM vq.job_search o
  JOIN vq.jobs ON vq.jobs.id = o.job_id AND vq.jobs.job_type = o.job_type
 WHERE o.job_type = $2::text
   AND {filter}
   AND ($10::text IS NULL OR {after})
 ORDER BY {order}
 LIMIT $12;

-- list_jobs_by_priority --
-- list_jobs in priority order ({after} on vq.job_search's columns, o): the walk goes
-- through vq.job_search's (job_priority, job_id) index (migration 0018), each job joined
-- by its key. The join names the copied columns too, so the planner knows the two orders
-- are one and takes vq.jobs' own index instead when a filter is narrower (queued: the
-- claim index), and checks a type filter on the side row.
SELECT vq.jobs.*
  FROM vq.job_search o
  JOIN vq.jobs ON vq.jobs.id = o.job_id AND vq.jobs.priority = o.job_priority
                  AND vq.jobs.job_type = o.job_type
 WHERE {filter}
   AND ($10::text IS NULL OR {after})
 ORDER BY {order}
 LIMIT $12;

-- search_job_ids --
-- Up to {limit} ids of the jobs whose words match the search text $1, in no order:
-- without an ORDER BY the word index answers in a few milliseconds however rare the
-- words, where an ordered walk of vq.jobs would read the whole table to find none.
SELECT job_id FROM vq.job_search WHERE doc @@ vq.job_search_query($1::text) LIMIT {limit};

-- list_jobs_words_window --
-- list_jobs for the search text $13 among the next {window} jobs of creation order
-- only, with no other filter (the other filters' parameters NULL, $4 too). The walk goes
-- through vq.job_search's key (ids are time-ordered: its order is the jobs'), each
-- row's words matched where they lie, and only a match is joined to its job: words that
-- common find their page there, before the word index would list every match (a bitmap
-- of a million entries for a word every job has: over 100 ms), and a burst of jobs
-- without them costs a narrow row each, not a probe of the side table per job. Fewer
-- rows than asked for say only that the window was too short. With another filter
-- list_jobs_window is quicker: vq.jobs' indexes (failed, a status) narrow its walk.
SELECT vq.jobs.*
  FROM (SELECT o.job_id, o.doc
          FROM vq.job_search o
         WHERE ($10::text IS NULL OR {side_after})
         ORDER BY {side_order}
         LIMIT {window}) AS recent
  JOIN vq.jobs ON vq.jobs.id = recent.job_id
 WHERE recent.doc @@ (SELECT vq.job_search_query($13::text))
   AND {filter}
 ORDER BY {order}
 LIMIT $12;

-- list_jobs_window --
-- list_jobs for the search text $13 among the next {window} jobs of the order only (the
-- other filters applied, $4 NULL), each job's words looked up by its key: words that
-- common find their page there, before the word index would list every match (a
-- bitmap of a million entries for a word every job has: over 100 ms). Fewer rows than
-- asked for say only that the window was too short.
SELECT *
  FROM (SELECT *
          FROM vq.jobs
         WHERE {filter}
           AND ($10::text IS NULL OR {after})
         ORDER BY {order}
         LIMIT {window}) AS recent
 WHERE (SELECT s.doc FROM vq.job_search s WHERE s.job_id = recent.id)
       @@ (SELECT vq.job_search_query($13::text))
 ORDER BY {order}
 LIMIT $12;

-- list_jobs_among --
-- list_jobs among the jobs $13 only: the matches search_job_ids found when they were
-- few, so the text filter ($4) is already applied and passed as NULL. The ids are
-- joined by primary key, then sorted: a few thousand at most.
SELECT vq.jobs.*
  FROM unnest($13::uuid[]) AS hit(job_id)
  JOIN vq.jobs ON vq.jobs.id = hit.job_id
 WHERE {filter}
   AND ($10::text IS NULL OR {after})
 ORDER BY {order}
 LIMIT $12;

-- count_jobs --
-- How many jobs match the filters and are in one of the statuses $10 (what a bulk
-- action would act on, for its confirmation).
SELECT count(*) FROM vq.jobs WHERE {filter} AND status = ANY($10::vq.job_status[]);

-- bulk_retry_jobs --
-- Send every failed or cancelled job matching the filters back to the queue, as
-- retry_job does one; $10 says who asked. Rows another action holds are left alone.
WITH target AS (
    SELECT id FROM vq.jobs
     WHERE {filter} AND status IN ('failed', 'cancelled')
       FOR UPDATE SKIP LOCKED
),
updated AS (
    UPDATE vq.jobs j
       SET status = 'queued', run_at = now(), retry_count = 0, error = NULL, result = NULL,
           progress = NULL, cancel_requested = false, completed_at = NULL, started_at = NULL,
           worker_id = NULL, lease_expires_at = NULL, updated_at = now()
      FROM target t
     WHERE j.id = t.id
    RETURNING j.id
),
events AS (
    INSERT INTO vq.job_events (job_id, event, details)
    SELECT id, 'retried', $10::jsonb FROM updated
)
SELECT count(*) FROM updated;

-- bulk_cancel_jobs --
-- Cancel every queued job matching the filters and ask the workers of the running ones
-- to stop them, as cancel_job does one; $10 says who asked.
WITH target AS (
    SELECT id, status FROM vq.jobs
     WHERE {filter} AND status IN ('queued', 'running') AND NOT cancel_requested
       FOR UPDATE SKIP LOCKED
),
updated AS (
    UPDATE vq.jobs j
       SET status = CASE WHEN t.status = 'queued' THEN 'cancelled' ELSE 'running' END::vq.job_status,
           cancel_requested = (t.status = 'running'),
           completed_at = CASE WHEN t.status = 'queued' THEN now() END,
           updated_at = now()
      FROM target t
     WHERE j.id = t.id
    RETURNING j.id, j.status
),
events AS (
    INSERT INTO vq.job_events (job_id, event, details)
    SELECT id, CASE WHEN status = 'cancelled' THEN 'cancelled' ELSE 'cancel_requested' END,
           $10::jsonb
      FROM updated
),
-- Referenced below: a plain SELECT in WITH runs only when something reads it.
notified AS (
    SELECT pg_notify('vq_cancel', id::text) FROM updated WHERE status = 'running'
)
SELECT (SELECT count(*) FROM updated) AS acted, (SELECT count(*) FROM notified) AS running;

-- prune_jobs --
-- Delete up to $2 finished jobs older than $1 seconds, with their history.
WITH old AS (
    SELECT id FROM vq.jobs
     WHERE status IN ('completed', 'failed', 'cancelled')
       AND completed_at < now() - make_interval(secs => $1::float8)
     LIMIT $2
),
gone AS (
    DELETE FROM vq.jobs j USING old WHERE j.id = old.id RETURNING j.id
),
history AS (
    DELETE FROM vq.job_events e USING gone WHERE e.job_id = gone.id
)
SELECT count(*) FROM gone;
