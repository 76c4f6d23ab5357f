-- 0012: completion callbacks.
--
-- A job may name a callback URL, and a job type may give its jobs a default one; the
-- job row keeps the URL it was submitted with (the type's default copied in at insert),
-- so a later change of the default does not redirect callbacks of jobs already queued.

ALTER TABLE vq.jobs
    ADD COLUMN callback_url text CHECK (callback_url IS NULL OR length(callback_url) <= 2000);

ALTER TABLE vq.job_queue_config
    ADD COLUMN callback_url text CHECK (callback_url IS NULL OR length(callback_url) <= 2000);
