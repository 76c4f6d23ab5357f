-- 0005: time-ordered job ids (UUID version 7 layout: 48 bits of milliseconds, then
-- random bits). New ids land at the right edge of jobs_pkey and job_events_job_idx
-- instead of on a random page, so a large table keeps its hot index pages in memory
-- and batch enqueues write less (measured with load/bench_queue.py, see
-- docs/performance.md). PostgreSQL 18 has uuidv7(); this works on 14 and later.
CREATE FUNCTION vq.uuid_v7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp())
                                                     * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

ALTER TABLE vq.jobs ALTER COLUMN id SET DEFAULT vq.uuid_v7();
