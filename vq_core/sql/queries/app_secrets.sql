-- Secrets shared by every app instance (vq.app_secrets).
-- One named block per query: "-- name --", then a one-line purpose. vq_core.db.queries
-- loads every file of this folder once; a name may appear in only one of them.
-- Parameters are always bound, never formatted in.

-- ensure_app_secret --
-- Store a secret unless one with this name exists; return the stored value either way.
WITH inserted AS (
    INSERT INTO vq.app_secrets (name, value) VALUES ($1, $2)
    ON CONFLICT (name) DO NOTHING
    RETURNING value
)
SELECT value FROM inserted
UNION ALL
SELECT value FROM vq.app_secrets WHERE name = $1
LIMIT 1;
