-- 0019: the job list's type filter, through an index in the side table of 0017.
--
-- jobs_type_id_idx (job_type, id DESC) served the list filtered by type, and took an
-- entry at every row version: the claim's and the completion's too, which HOT cannot
-- place. Dropping it made the drain 9% faster and the batch enqueue 9% (A/B in one run,
-- docs/performance.md, "The type filter"). A job's type does not change after the
-- insert, so, like its priority (0018), it is copied once into vq.job_search and
-- indexed there; list_jobs_of_type walks that index newest first and joins each job by
-- its key.

ALTER TABLE vq.job_search ADD COLUMN job_type text;

UPDATE vq.job_search s SET job_type = j.job_type FROM vq.jobs j WHERE j.id = s.job_id;

ALTER TABLE vq.job_search ALTER COLUMN job_type SET NOT NULL;

CREATE OR REPLACE FUNCTION vq.job_search_changed() RETURNS trigger LANGUAGE plpgsql AS $$
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

-- One update trigger for both copies. vq changes neither column; an operator's SQL
-- might. The words stay those of the type at the insert, as the payload's do.
DROP TRIGGER jobs_priority_update ON vq.jobs;
DROP FUNCTION vq.job_priority_changed();

CREATE FUNCTION vq.job_search_copies_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE vq.job_search SET job_priority = NEW.priority, job_type = NEW.job_type
     WHERE job_id = NEW.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_search_update AFTER UPDATE OF priority, job_type ON vq.jobs
    FOR EACH ROW
    WHEN (OLD.priority IS DISTINCT FROM NEW.priority OR OLD.job_type IS DISTINCT FROM NEW.job_type)
    EXECUTE FUNCTION vq.job_search_copies_changed();

CREATE INDEX job_search_type_idx ON vq.job_search (job_type, job_id);

DROP INDEX vq.jobs_type_id_idx;

-- The updates above (0018's and these) rewrote every row: without fresh statistics the
-- planner misjudged the new joins by 100 times (a type filter of failed jobs, 2 ms
-- after ANALYZE, took 200 ms before it, at 1M jobs).
ANALYZE vq.job_search;
