-- 0006: the job list's "newest first" walks the primary key, so jobs_created_idx goes.
--
-- Ids are time-ordered since 0005, so jobs_pkey already is the index a newest-first
-- list needs. jobs_created_idx took an index entry on every row version, three per job
-- (enqueue, claim, completion), for an order the primary key gives for free: without
-- it the database spends about 10% less per job in a drain (load/bench_queue.py; see
-- docs/performance.md). The two indexes of 0004 follow: the same orders, by id.
-- Jobs created before 0005 have random ids; among themselves they list in no order.

-- For id order to be creation order beyond the millisecond, ids now carry the time to
-- a quarter of a microsecond: the 12 bits after the version hold the fraction of the
-- millisecond (RFC 9562, method 3, as PostgreSQL 18's uuidv7() does). Rows made in the
-- same quarter microsecond (within one batch) keep a random order. PL/pgSQL reads the
-- clock once; a SQL function doing so in a subquery is not inlined and costs twice as much.
CREATE OR REPLACE FUNCTION vq.uuid_v7() RETURNS uuid LANGUAGE plpgsql VOLATILE PARALLEL SAFE AS $$
DECLARE
    us bigint := (date_part('epoch', clock_timestamp()) * 1000000)::bigint;
BEGIN
    RETURN encode(substring(int8send(us / 1000) FROM 3)                         -- 48 bits: ms
                  || int2send((28672 + (us % 1000) * 4096 / 1000)::smallint)   -- 7, fraction
                  || substring(uuid_send(gen_random_uuid()) FROM 9),           -- variant, random
                  'hex')::uuid;
END
$$;

DROP INDEX vq.jobs_created_idx;

DROP INDEX vq.jobs_type_created_idx;
CREATE INDEX jobs_type_id_idx ON vq.jobs (job_type, id DESC);

DROP INDEX vq.jobs_failed_cancelled_idx;
CREATE INDEX jobs_failed_cancelled_idx ON vq.jobs (status, id DESC)
    WHERE status IN ('failed', 'cancelled');
