-- 0002: access control: users, API tokens, login rate limiting, shared app secrets.

CREATE TABLE vq.users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    -- argon2id, in the PHC string format ($argon2id$v=19$...).
    password_hash text NOT NULL CHECK (password_hash LIKE '$argon2%'),
    role          text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled      boolean NOT NULL DEFAULT false
);

-- Tokens are long random strings, so a fast hash (sha256) is enough: there is
-- nothing to brute-force, and a lookup by hash costs one index probe per request.
CREATE TABLE vq.api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL CHECK (name ~ '^[A-Za-z0-9_.@:-]{1,64}$'),
    token_hash   text NOT NULL UNIQUE,
    role         text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked      boolean NOT NULL DEFAULT false
);
-- A name may be reused once its token is revoked.
CREATE UNIQUE INDEX api_tokens_live_name_idx ON vq.api_tokens (name) WHERE NOT revoked;

-- Failed logins per username and client address; counted over a sliding window
-- in the database, so every app instance behind a load balancer sees them.
CREATE TABLE vq.login_failures (
    username text NOT NULL,
    ip       text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_key_idx ON vq.login_failures (username, ip, at);
CREATE INDEX login_failures_at_idx ON vq.login_failures (at);

-- Secrets every app instance must share (the session signing key), generated on
-- first start by whichever instance comes first.
CREATE TABLE vq.app_secrets (
    name       text PRIMARY KEY,
    value      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
