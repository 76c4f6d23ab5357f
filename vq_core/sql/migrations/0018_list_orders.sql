-- 0018: the job list's sort by priority and filter by type, through indexes in the
-- side table of 0017.
--
-- Sorting a million jobs by priority read the whole table (180 ms at 1M jobs), and the
-- type filter had jobs_type_id_idx (job_type, id DESC) on vq.jobs. An index on vq.jobs
-- takes an entry at every row version, and every claim and every completion writes one
-- that HOT cannot place: an index (priority, id) there cost the drain and the batch
-- enqueue 5% each, and dropping jobs_type_id_idx made the drain 9% faster and the
-- enqueue 6% (A/B in one run; docs/performance.md, "Sort by priority" and "The type
-- filter"). A job's priority and type do not change after the insert, so they are
-- copied, once, into vq.job_search beside the job's words, and indexed there;
-- list_jobs_by_priority and list_jobs_of_type walk those indexes and join each job by
-- its key.

ALTER TABLE vq.job_search ADD COLUMN job_priority smallint, ADD COLUMN job_type text;

-- The jobs there are now (the columns' default, NULL, waits for them): one rewrite.
UPDATE vq.job_search s SET job_priority = j.priority, job_type = j.job_type
  FROM vq.jobs j
 WHERE j.id = s.job_id;

ALTER TABLE vq.job_search
    ALTER COLUMN job_priority SET NOT NULL,
    ALTER COLUMN job_type SET NOT NULL;

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

-- vq itself changes neither column; a statement that does (an operator's SQL) keeps
-- the copies true. UPDATE OF: the trigger is not even looked at for the claims' and
-- completions' updates, which name neither. The words stay those of the type at the
-- insert, as the payload's do.
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

CREATE INDEX job_search_priority_idx ON vq.job_search (job_priority, job_id);
CREATE INDEX job_search_type_idx ON vq.job_search (job_type, job_id);

DROP INDEX vq.jobs_type_id_idx;

-- The update above rewrote every row: without fresh statistics the planner misjudged
-- the new joins by 100 times (a type filter of failed jobs, 2 ms after ANALYZE, took
-- 200 ms before it, at 1M jobs).
ANALYZE vq.job_search;
