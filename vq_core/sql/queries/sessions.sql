-- Sessions of signed-in users (vq.sessions), looked up by the sha256 of the cookie's secret.
-- One named block per query: "-- name --", then a one-line purpose. vq_core.db.queries
-- loads every file of this folder once; a name may appear in only one of them.
-- Parameters are always bound, never formatted in.

-- create_session --
-- Open a session for an enabled user, deleting expired sessions (of anyone) on the way.
WITH pruned AS (
    DELETE FROM vq.sessions WHERE expires_at <= now()
)
INSERT INTO vq.sessions (token_hash, user_id, expires_at, ip, user_agent)
SELECT $1, u.id, now() + make_interval(secs => $3::float8), $4, $5
  FROM vq.users u
 WHERE u.username = $2 AND NOT u.disabled
RETURNING id;

-- get_session --
-- The live session with this hash and its user, if the session has not expired and the
-- user is enabled.
SELECT s.id, u.username, u.role, s.last_seen_at,
       s.last_seen_at < now() - interval '1 minute' AS stale
  FROM vq.sessions s JOIN vq.users u ON u.id = s.user_id
 WHERE s.token_hash = $1 AND s.expires_at > now() AND NOT u.disabled;

-- touch_session --
-- Record a session's use (get_session says when: at most once a minute, so an open page
-- does not write on every refresh).
UPDATE vq.sessions SET last_seen_at = now() WHERE id = $1;

-- end_session_by_hash --
-- Sign-out: delete the session whose cookie was presented.
DELETE FROM vq.sessions WHERE token_hash = $1;

-- list_user_sessions --
-- A user's live sessions, newest first; no row at all (not even the user) when the name is unknown.
SELECT u.id AS user_id, s.id, s.created_at, s.last_seen_at, s.expires_at, s.ip, s.user_agent
  FROM vq.users u
  LEFT JOIN vq.sessions s ON s.user_id = u.id AND s.expires_at > now()
 WHERE u.username = $1
 ORDER BY s.created_at DESC, s.id DESC;

-- end_user_sessions --
-- End every session of a user; the user's id (NULL if unknown) and how many ended.
WITH target AS (
    SELECT id FROM vq.users WHERE username = $1
),
ended AS (
    DELETE FROM vq.sessions s USING target t WHERE s.user_id = t.id RETURNING s.id
)
SELECT (SELECT id FROM target) AS user_id, (SELECT count(*) FROM ended) AS n;

-- end_session --
-- End one session by its id; the session and its user's name, if it existed.
DELETE FROM vq.sessions s
 USING vq.users u
 WHERE s.id = $1 AND u.id = s.user_id
RETURNING s.id, u.username, s.created_at, s.last_seen_at, s.expires_at, s.ip, s.user_agent;
