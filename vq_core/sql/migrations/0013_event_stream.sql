-- 0013: the live event stream (GET /api/v1/jobs/{id}/events, GET /api/v1/events).
--
-- Each web process keeps ONE listening connection and reads the events new since its
-- cursor once per notification, for all its subscribers (vq_core/event_hub.py); no
-- client polls. The trigger is statement-level and carries no payload, so a statement
-- that logs 1,000 events costs one pg_notify, and PostgreSQL folds the identical
-- notifications of one transaction into one: the worker's claim and completion
-- batches pay a function call per statement, not per row.
--
-- job_events had no index on id alone (only (job_id, id), for a job's history): the
-- stream's "id > cursor, oldest first" read and a dashboard's replay walk this key. Ids
-- are an identity, so new entries land at the right edge of the index.

CREATE FUNCTION vq.notify_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vq_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER job_events_notify_insert AFTER INSERT ON vq.job_events
    FOR EACH STATEMENT EXECUTE FUNCTION vq.notify_events_inserted();

ALTER TABLE vq.job_events ADD CONSTRAINT job_events_pkey PRIMARY KEY (id);
