-- 0009: two values the schema let through that the worker cannot use.
--
-- A timeout that is NaN or Infinity. PostgreSQL orders NaN above every number, so
-- CHECK (timeout_s > 0) admitted it, and every job of the type then failed (as
-- UNKNOWN, "cannot convert float NaN to integer", under uvloop; as an instant TIMEOUT
-- under asyncio). The check now names both. A row that holds one is rewritten first,
-- or the constraint could not be added: NaN, which never worked, becomes the column's
-- default (600 s); Infinity, which meant "never time out", becomes 1e9 s (31 years),
-- which still does.
--
-- A payload that is not a JSON object ([1,2], "text", null). vq_core/validation.py
-- refuses one from the API and the CLI, but a hand-written INSERT or a Python caller
-- of the store could store one, and each attempt then failed as UNKNOWN until the
-- retries ran out. Existing rows are converted rather than left behind a NOT VALID
-- constraint: PostgreSQL checks even a NOT VALID constraint on every UPDATE of a row,
-- so the claim of such a job would fail, and with it the claim of every job in its
-- batch, on every poll. Nothing is lost: the old value stays in the payload under
-- "invalid_payload". A queued job among them fails now as INVALID_INPUT, what the
-- worker does with one (an operator can fix the payload and retry it); the others
-- keep their status. Finding them and adding the check read the jobs table twice,
-- holding back its writes meanwhile: about 0.5 s per million jobs.

UPDATE vq.job_queue_config
   SET timeout_s = CASE WHEN timeout_s = 'NaN' THEN 600 ELSE 1e9 END, updated_at = now()
 WHERE timeout_s IN ('NaN', 'Infinity');

ALTER TABLE vq.job_queue_config
    DROP CONSTRAINT job_queue_config_timeout_s_check,
    ADD CONSTRAINT job_queue_config_timeout_s_check
        CHECK (timeout_s > 0 AND timeout_s NOT IN ('NaN', 'Infinity'));

WITH bad AS (
    SELECT id, status = 'queued' AS fail_now, jsonb_typeof(payload) AS kind
      FROM vq.jobs
     WHERE jsonb_typeof(payload) <> 'object'
       FOR UPDATE
),
converted AS (
    UPDATE vq.jobs j
       SET payload = jsonb_build_object('invalid_payload', j.payload),
           status = CASE WHEN b.fail_now THEN 'failed' ELSE j.status END,
           error = CASE WHEN b.fail_now THEN jsonb_build_object(
                       'message', 'payload: must be a JSON object, not a JSON ' || b.kind,
                       'type', 'INVALID_INPUT', 'retryable', false, 'will_retry', false,
                       'attempt', j.retry_count + 1, 'timestamp', now())
                   ELSE j.error END,
           completed_at = CASE WHEN b.fail_now THEN now() ELSE j.completed_at END,
           updated_at = now()
      FROM bad b
     WHERE j.id = b.id
    RETURNING j.id, j.error, b.fail_now
)
INSERT INTO vq.job_events (job_id, event, details)
SELECT id, 'failed', error || '{"by": "migration 0009"}' FROM converted WHERE fail_now;

ALTER TABLE vq.jobs ADD CONSTRAINT jobs_payload_check CHECK (jsonb_typeof(payload) = 'object');
