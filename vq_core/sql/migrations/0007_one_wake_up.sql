-- 0007: one wake-up mechanism. The jobs table itself tells idle workers (NOTIFY
-- vq_jobs) whenever a job becomes ready to claim, whoever made it so: an insert (the
-- store, vq.enqueue-style SQL, a hand-written INSERT), or an update that puts a job in
-- 'queued' with its run_at reached (an operator's retry, a shutdown's release, lease
-- recovery, a retry without backoff). The store sends no vq_jobs notification of its
-- own any more. A retry with backoff is not ready yet: its worker wakes itself when the
-- backoff ends, and the poll tick is everyone's fallback.
--
-- Inserts keep one statement-level notification per statement (a batch of 10,000 jobs
-- wakes workers once). Updates are row-level with a WHEN clause, so the claim, lease
-- and completion updates, which never make a job ready, cost a comparison per row and
-- no function call; NOTIFY folds identical notifications of one transaction into one.
-- Workers of the previous version still send their own notifications: harmless
-- duplicates until they are upgraded.

CREATE FUNCTION vq.notify_jobs_ready() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vq_jobs', '');
    RETURN NULL;
END;
$$;

DROP TRIGGER jobs_notify_insert ON vq.jobs;
DROP FUNCTION vq.notify_jobs_inserted();

CREATE TRIGGER jobs_notify_insert AFTER INSERT ON vq.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION vq.notify_jobs_ready();

CREATE TRIGGER jobs_notify_ready AFTER UPDATE OF status, run_at ON vq.jobs
    FOR EACH ROW
    WHEN (NEW.status = 'queued' AND NEW.run_at <= now()
          AND (OLD.status <> 'queued' OR OLD.run_at > now()))
    EXECUTE FUNCTION vq.notify_jobs_ready();
