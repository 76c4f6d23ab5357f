-- 0008: server-side sessions. A session cookie used to be self-contained (signed,
-- never stored), so signing out could not end it: a copied cookie kept working until
-- it expired, and re-enabling a user brought their old cookies back. Now the cookie
-- carries a random secret, and a session exists only while its row does: sign-out,
-- a password change, a role change and disabling the user delete rows, and the admin
-- can list and end them.
--
-- Cookies issued before this migration carry no session and are refused, so everyone
-- signs in once more after the upgrade.

CREATE TABLE vq.sessions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The sha256 of the random secret in the cookie, never the secret itself: a copy of
    -- this table (a backup, a replica) signs nobody in. The secret is 256 random bits,
    -- so a fast hash is enough, as for API tokens.
    token_hash   text NOT NULL UNIQUE,
    user_id      bigint NOT NULL REFERENCES vq.users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    -- Where the session was opened from, for the admin who reviews a user's sessions.
    ip           text NOT NULL,
    user_agent   text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user_idx ON vq.sessions (user_id);
-- Expired sessions are deleted at each sign-in; this keeps that a short index walk.
CREATE INDEX sessions_expires_idx ON vq.sessions (expires_at);
