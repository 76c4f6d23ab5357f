-- What `vq db backup` and `vq db restore` ask the server (vq_core/db/backup.py).
-- One named block per query: "-- name --", then a one-line purpose. pg_dump and
-- pg_restore do the copying; these only check, count and set aside.

-- backup_server_version --
-- The server's version as a number (180004) and as text ("18.4"): which client tools fit.
SELECT current_setting('server_version_num')::int AS num,
       current_setting('server_version') AS text;

-- backup_vq_schema_exists --
-- Whether this database holds a vq schema (what a backup copies, what a restore refuses).
SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'vq');

-- backup_count_jobs --
-- How many jobs, and how many history events, the vq schema holds (said after each step).
SELECT (SELECT count(*) FROM vq.jobs) AS jobs,
       (SELECT count(*) FROM vq.job_events) AS events;

-- backup_set_aside_vq_schema --
-- restore --force: keep the schema being replaced under another name until the restore
-- has committed, so a failed restore can put it back. A leftover from a crash goes first.
DROP SCHEMA IF EXISTS vq_before_restore CASCADE;
ALTER SCHEMA vq RENAME TO vq_before_restore;

-- backup_drop_set_aside_schema --
-- restore --force: the restore committed; the replaced schema goes.
DROP SCHEMA IF EXISTS vq_before_restore CASCADE;

-- backup_put_back_vq_schema --
-- restore --force: the restore failed (nothing of it committed); the old schema comes back.
ALTER SCHEMA vq_before_restore RENAME TO vq;
