-- Benchmark setup for load/bench_admin.py (not application SQL): $1 synthetic jobs in
-- one statement. Jobs are 2.5 s apart, the newest now; the newest 1,000 are the live
-- backlog (queued, every 50th running), older ones finished 70 s after creation:
-- 93% completed, 5% failed, 2% cancelled. Types 70% doubt, 20% diagram, 10% compose,
-- and a rare one: every 100,000th job is a 'revideo' (10 in a million);
-- the question names one of 40 topics and ends with the job's number, so a search for
-- a topic matches 2.5% of the table and a search for a number matches one job.
-- Ids are made from created_at in vq.uuid_v7()'s layout, so id order is creation order
-- as it is for real jobs.
INSERT INTO vq.jobs (id, job_type, priority, status, payload, result, error, progress,
                     retry_count, max_retries, run_at, worker_id, created_at, updated_at,
                     started_at, completed_at)
SELECT encode(substring(int8send((date_part('epoch', j.created_at) * 1000)::bigint) FROM 3)
              || int2send(28672::smallint)
              || substring(uuid_send(gen_random_uuid()) FROM 9), 'hex')::uuid,
       j.job_type, j.priority, j.status,
       jsonb_build_object('question', format('How does %s work? (doubt #%s)', j.topic, j.i)),
       CASE WHEN j.status = 'completed' THEN jsonb_build_object(
           'video_url', format('http://127.0.0.1:8080/media/%s.mp4', j.i),
           'thumbnail_url', format('http://127.0.0.1:8080/media/%s.jpg', j.i),
           'duration', 60) END,
       CASE WHEN j.status = 'failed' THEN jsonb_build_object(
           'type', 'API_ERROR', 'message', 'orchestrator answered 503', 'retryable', true,
           'attempt', 4) END,
       CASE WHEN j.status = 'running' THEN '{"percent": 40, "stage": "diagram"}'::jsonb END,
       CASE WHEN j.status = 'failed' THEN 3 ELSE 0 END,
       3,
       j.created_at,
       CASE WHEN j.status = 'running' THEN 'bench-worker' END,
       j.created_at,
       CASE WHEN j.final THEN j.created_at + interval '70 seconds' ELSE j.created_at END,
       CASE WHEN j.status IN ('completed', 'failed', 'running')
            THEN j.created_at + interval '10 seconds' END,
       CASE WHEN j.final THEN j.created_at + interval '70 seconds' END
  FROM (
    SELECT i,
           s.status,
           s.status::text IN ('completed', 'failed', 'cancelled') AS final,
           CASE WHEN i % 100000 = 0 THEN 'revideo'
                WHEN i / 100 % 10 < 7 THEN 'doubt' WHEN i / 100 % 10 < 9 THEN 'diagram'
                ELSE 'compose' END
               AS job_type,
           ((i / 3) % 4)::smallint AS priority,
           (ARRAY['gravity', 'photosynthesis', 'entropy', 'inflation', 'a derivative',
                  'an integral', 'a prime sieve', 'recursion', 'a vaccine', 'tides',
                  'a rainbow', 'magnetism', 'friction', 'buoyancy', 'erosion', 'evolution',
                  'mitosis', 'an eclipse', 'a black hole', 'refraction', 'a transistor',
                  'compound interest', 'supply and demand', 'a volcano', 'sound',
                  'a hash table', 'a neural network', 'the heart', 'an enzyme', 'rust',
                  'a lever', 'a pulley', 'a circuit', 'a battery', 'a glacier', 'a cloud',
                  'lightning', 'a compass', 'a telescope', 'osmosis'])[1 + i % 40] AS topic,
           now() - ($1::bigint - i) * interval '2.5 seconds' AS created_at
      FROM generate_series(1, $1::bigint) AS i
     CROSS JOIN LATERAL (
        SELECT (CASE WHEN i > $1::bigint - 1000 THEN
                         CASE WHEN i % 50 = 0 THEN 'running' ELSE 'queued' END
                     WHEN i % 100 < 5 THEN 'failed'
                     WHEN i % 100 < 7 THEN 'cancelled'
                     ELSE 'completed' END)::vq.job_status AS status
     ) AS s
  ) AS j;
