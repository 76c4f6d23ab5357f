-- 0016: counts of finished jobs kept as they change, so the stats read is constant time.
--
-- Store.stats() counted the whole table by status, type and priority on every read of
-- the admin page (330 to 480 ms at 1M jobs). Almost every row is finished (completed,
-- failed, cancelled) and a finished row changes only by a retry (failed -> queued), a
-- prune, a bulk action or an import; queued and running jobs are few and have partial
-- indexes, so they are still counted live. vq.job_counts holds the finished counts.
--
-- Maintained per statement, not per row: one trigger call aggregates a statement's
-- transition tables (a claim of 500 jobs or a batch of completions is one call and at
-- most a few small upserts; a claim, queued -> running, writes nothing). Inserts too: a
-- row trigger (WHEN the row is finished) was tried and costs an import of 100,000
-- finished jobs 105 s instead of 3 s, every row updating the same counter row again
-- in one transaction. Each backend adds to its own shard (pg_backend_pid() % 16) so
-- that workers completing jobs at once do not wait for each other's row locks; a
-- shard's count may go negative (a backend retrying a job another completed), only the
-- sum is meaningful. The counts commit with the change that made them: they are exact.
--
-- TRUNCATE fires no row or DELETE trigger: its own statement trigger empties the counts.
-- vq.rebuild_job_counts() recounts from the table (docs/operations.md says when).

CREATE TABLE vq.job_counts (
    job_type text NOT NULL,
    status vq.job_status NOT NULL,
    priority smallint NOT NULL,
    shard smallint NOT NULL,
    n bigint NOT NULL,
    CONSTRAINT job_counts_pkey PRIMARY KEY (job_type, status, priority, shard),
    CONSTRAINT job_counts_status_check CHECK (status IN ('completed', 'failed', 'cancelled'))
);

CREATE FUNCTION vq.job_counts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER jobs_counts_insert AFTER INSERT ON vq.jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION vq.job_counts_changed();

CREATE TRIGGER jobs_counts_update AFTER UPDATE ON vq.jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION vq.job_counts_changed();

CREATE TRIGGER jobs_counts_delete AFTER DELETE ON vq.jobs
    REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION vq.job_counts_changed();

CREATE TRIGGER jobs_counts_truncate AFTER TRUNCATE ON vq.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION vq.job_counts_changed();

CREATE FUNCTION vq.rebuild_job_counts() RETURNS bigint LANGUAGE plpgsql AS $$
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

SELECT vq.rebuild_job_counts();
