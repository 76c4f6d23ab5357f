-- API tokens (vq.api_tokens), stored as their sha256.
-- One named block per query: "-- name --", then a one-line purpose. vq_core.db.queries
-- loads every file of this folder once; a name may appear in only one of them.
-- Parameters are always bound, never formatted in.

-- create_token --
-- Add an API token by its sha256; NULL when a live token already has this name.
INSERT INTO vq.api_tokens (name, token_hash, role) VALUES ($1, $2, $3)
ON CONFLICT (name) WHERE NOT revoked DO NOTHING
RETURNING id, name, role, created_at, last_used_at, revoked;

-- get_token_by_hash --
-- The live token with this sha256, if any.
SELECT id, name, role, last_used_at FROM vq.api_tokens WHERE token_hash = $1 AND NOT revoked;

-- touch_token --
-- Record a token's use, at most once a minute so busy clients do not write on every call.
UPDATE vq.api_tokens SET last_used_at = now()
 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');

-- list_tokens --
-- Every token, without hashes.
SELECT id, name, role, created_at, last_used_at, revoked FROM vq.api_tokens ORDER BY id;

-- revoke_token --
-- Revoke a live token by id or by name.
UPDATE vq.api_tokens SET revoked = true
 WHERE NOT revoked AND (id = $1::bigint OR name = $2::text)
RETURNING id, name, role, created_at, last_used_at, revoked;
