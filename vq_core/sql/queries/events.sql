-- The live event stream (vq.job_events read by vq_core/event_hub.py and the SSE routes):
-- each web process reads the events new since its cursor once for all its subscribers,
-- and a (re)connecting client replays what it missed. Every read joins the job row for
-- the fields subscribers filter on. One named block per query: "-- name --", then a
-- one-line purpose.

-- event_stream_start --
-- Where a hub starts: the newest event id, and the transactions in progress now (any of
-- them may yet commit an event with a lower id), as xid8 text.
SELECT coalesce((SELECT max(id) FROM vq.job_events), 0) AS last_id,
       ARRAY(SELECT x::text FROM pg_snapshot_xip(pg_current_snapshot()) AS x) AS xip;

-- event_stream_ended --
-- Whether every transaction of $1 (xid8 text) has ended as this statement sees it.
SELECT coalesce(bool_and(pg_visible_in_snapshot(x, pg_current_snapshot())), true)
  FROM unnest($1::text[]::xid8[]) AS x;

-- event_stream_batch --
-- The events after the cursor $1 (and the late ids $2 a gap left behind), oldest first,
-- at most $3, in one snapshot with that snapshot's transactions in progress and whether
-- the transactions $4 (xid8 text) have ended in it: what decides that a gap in the ids
-- is a rollback, not a commit still to come.
SELECT ARRAY(SELECT x::text FROM pg_snapshot_xip(pg_current_snapshot()) AS x) AS xip,
       (SELECT coalesce(bool_and(pg_visible_in_snapshot(x, pg_current_snapshot())), true)
          FROM unnest($4::text[]::xid8[]) AS x) AS ended,
       coalesce((SELECT jsonb_agg(to_jsonb(b) ORDER BY b.id) FROM (
           SELECT e.id, e.job_id, e.event, e.at, e.worker_id, e.details,
                  j.job_type, j.group_key, j.priority, j.status, j.service
             FROM vq.job_events e
             LEFT JOIN vq.jobs j ON j.id = e.job_id
            WHERE e.id > $1::bigint OR e.id = ANY($2::bigint[])
            ORDER BY e.id
            LIMIT $3) b), '[]'::jsonb) AS events;

-- job_events_between --
-- One job's events with $2 < id <= $3, oldest first, at most $4 (a stream's replay).
SELECT e.id, e.job_id, e.event, e.at, e.worker_id, e.details,
       j.job_type, j.group_key, j.priority, j.status::text AS status, j.service
  FROM vq.job_events e
  JOIN vq.jobs j ON j.id = e.job_id
 WHERE e.job_id = $1 AND e.id > $2 AND e.id <= $3
 ORDER BY e.id
 LIMIT $4;

-- events_between --
-- Every job's events with $1 < id <= $2 whose job matches the filters ($4 type, $5
-- status, $6 priority, $7 group, $8 service; NULL: any), oldest first, at most $3.
SELECT e.id, e.job_id, e.event, e.at, e.worker_id, e.details,
       j.job_type, j.group_key, j.priority, j.status::text AS status, j.service
  FROM vq.job_events e
  JOIN vq.jobs j ON j.id = e.job_id
 WHERE e.id > $1 AND e.id <= $2
   AND ($4::text IS NULL OR j.job_type = $4::text)
   AND ($5::vq.job_status IS NULL OR j.status = $5::vq.job_status)
   AND ($6::smallint IS NULL OR j.priority = $6::smallint)
   AND ($7::text IS NULL OR j.group_key = $7::text)
   AND ($8::text IS NULL OR j.service = $8::text)
 ORDER BY e.id
 LIMIT $3;

-- job_stream_state --
-- A job's status and the id of its newest event: whether its stream has anything left.
SELECT j.status::text AS status,
       (SELECT max(e.id) FROM vq.job_events e WHERE e.job_id = j.id) AS last_id
  FROM vq.jobs j WHERE j.id = $1;
