-- 0018: the job list's sort by priority, through an index in the side table of 0017.
--
-- Sorting a million jobs by priority read the whole table (180 ms at 1M jobs). An
-- index on vq.jobs (priority, id) would serve it, but every claim and every completion
-- writes a new version of the job's row that HOT cannot place, and each would add an
-- entry to that index too: 5% of the drain and of the batch enqueue, measured
-- (docs/performance.md, "Sort by priority"). A job's priority does not change after the
-- insert, so it is copied, once, into vq.job_search beside the job's words, and indexed
-- there; list_jobs_by_priority walks that index and joins each job by its key.

ALTER TABLE vq.job_search ADD COLUMN job_priority smallint;

-- The jobs there are now (the column's default, NULL, waits for them).
UPDATE vq.job_search s SET job_priority = j.priority FROM vq.jobs j WHERE j.id = s.job_id;

ALTER TABLE vq.job_search ALTER COLUMN job_priority SET NOT NULL;

CREATE OR REPLACE FUNCTION vq.job_search_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO vq.job_search (job_id, doc, job_priority)
        SELECT id, vq.job_search_doc(job_type, payload), priority FROM new_jobs;
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM vq.job_search s USING old_jobs o WHERE s.job_id = o.id;
    ELSE  -- TRUNCATE fires no DELETE trigger
        TRUNCATE vq.job_search;
    END IF;
    RETURN NULL;
END;
$$;

-- vq itself never changes a job's priority; a statement that does (an operator's SQL)
-- keeps the copy true. UPDATE OF: the trigger is not even looked at for the claims'
-- and completions' updates, which do not name the column.
CREATE FUNCTION vq.job_priority_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE vq.job_search SET job_priority = NEW.priority WHERE job_id = NEW.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_priority_update AFTER UPDATE OF priority ON vq.jobs
    FOR EACH ROW WHEN (OLD.priority IS DISTINCT FROM NEW.priority)
    EXECUTE FUNCTION vq.job_priority_changed();

CREATE INDEX job_search_priority_idx ON vq.job_search (job_priority, job_id);
