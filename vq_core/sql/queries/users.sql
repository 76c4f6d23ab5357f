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
-- Change a user's password hash, role or disabled flag (NULL keeps the current value);
-- a new password, another role or disabling ends the user's sessions in the same step.
WITH old AS (
    SELECT id, role FROM vq.users WHERE username = $1 FOR UPDATE
),
changed AS (
    UPDATE vq.users u
       SET password_hash = coalesce($2, u.password_hash),
           role = coalesce($3, u.role),
           disabled = coalesce($4, u.disabled)
      FROM old
     WHERE u.id = old.id
    RETURNING u.id, u.username, u.role, u.created_at, u.disabled, old.role AS old_role
),
ended AS (
    DELETE FROM vq.sessions s
     USING changed c
     WHERE s.user_id = c.id AND ($2::text IS NOT NULL OR c.role <> c.old_role OR c.disabled)
)
SELECT id, username, role, created_at, disabled FROM changed;

-- rehash_password --
-- Store a stronger hash of the same password (after a sign-in); sessions stay.
UPDATE vq.users SET password_hash = $2 WHERE username = $1;

-- list_users --
-- Every user, without password hashes.
SELECT id, username, role, created_at, disabled FROM vq.users ORDER BY username;

-- lock_login_key --
-- Serialise the sign-in attempts of one username from one address until the end of the
-- transaction, so start_login_attempt's count and insert are one step for that key.
SELECT pg_advisory_xact_lock(hashtext('vq.login_failures'), hashtext($1 || chr(1) || $2));

-- start_login_attempt --
-- Under lock_login_key: the failures of $1 from $2 within $4 s; below $3, record this
-- attempt as one more (cleared if the password turns out right). Also forgets failures
-- older than the window, skipping rows another sign-in is deleting.
WITH pruned AS (
    DELETE FROM vq.login_failures
     WHERE ctid = ANY(ARRAY(
               SELECT ctid FROM vq.login_failures
                WHERE at < now() - make_interval(secs => $4::float8)
                  FOR UPDATE SKIP LOCKED))
),
recent AS (
    SELECT count(*) AS n, extract(epoch FROM now() - min(at))::float8 AS oldest_age_s
      FROM vq.login_failures
     WHERE username = $1 AND ip = $2 AND at > now() - make_interval(secs => $4::float8)
),
counted AS (
    INSERT INTO vq.login_failures (username, ip)
    SELECT $1, $2 FROM recent WHERE n < $3
)
SELECT n, oldest_age_s, n < $3 AS allowed FROM recent;

-- clear_login_failures --
-- A successful login wipes the failures of that username from that address.
DELETE FROM vq.login_failures WHERE username = $1 AND ip = $2;
