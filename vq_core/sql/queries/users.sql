-- Users (vq.users) and failed logins (vq.login_failures).
-- One named block per query: "-- name --", then a one-line purpose. vq_core.db.queries
-- loads every file of this folder once; a name may appear in only one of them.
-- Parameters are always bound, never formatted in.

-- create_user --
-- Add a user with an argon2 password hash; NULL when the name is taken.
INSERT INTO vq.users (username, password_hash, role) VALUES ($1, $2, $3)
ON CONFLICT (username) DO NOTHING
RETURNING id, username, role, created_at, disabled;

-- any_user --
-- Whether the users table holds anyone (the first start creates an admin otherwise).
SELECT EXISTS (SELECT 1 FROM vq.users);

-- create_first_admin --
-- Add the first user as admin only while there is no user at all (NULL otherwise).
INSERT INTO vq.users (username, password_hash, role)
SELECT $1, $2, 'admin' WHERE NOT EXISTS (SELECT 1 FROM vq.users)
ON CONFLICT (username) DO NOTHING
RETURNING id;

-- get_user_for_login --
-- A user's hash, role and disabled flag, to check a password or a session.
SELECT id, username, password_hash, role, disabled FROM vq.users WHERE username = $1;

-- update_user --
-- Change a user's password hash, role or disabled flag (NULL keeps the current value).
UPDATE vq.users
   SET password_hash = coalesce($2, password_hash),
       role = coalesce($3, role),
       disabled = coalesce($4, disabled)
 WHERE username = $1
RETURNING id, username, role, created_at, disabled;

-- list_users --
-- Every user, without password hashes.
SELECT id, username, role, created_at, disabled FROM vq.users ORDER BY username;

-- count_login_failures --
-- Failed logins of a username from an address within the last $3 seconds, and the oldest one.
SELECT count(*) AS n, extract(epoch FROM now() - min(at))::float8 AS oldest_age_s
  FROM vq.login_failures
 WHERE username = $1 AND ip = $2 AND at > now() - make_interval(secs => $3::float8);

-- record_login_failure --
-- Remember a failed login and forget failures older than $3 seconds (keeps the table small).
WITH pruned AS (
    DELETE FROM vq.login_failures WHERE at < now() - make_interval(secs => $3::float8)
)
INSERT INTO vq.login_failures (username, ip) VALUES ($1, $2);

-- clear_login_failures --
-- A successful login wipes the failures of that username from that address.
DELETE FROM vq.login_failures WHERE username = $1 AND ip = $2;
