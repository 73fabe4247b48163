-- auth-kit schema, SQLite dialect. postgres/0001_init.sql is the same schema;
-- only the identity columns are spelled differently. The store tests compare
-- the two after migrating (tests/store.rs, schema_parity).

-- AUTOINCREMENT: a deleted user's id is never handed to a new user, so a
-- token issued to the old account can never name the new one.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL,
    email         TEXT,
    email_key     TEXT,                       -- lower-cased email: unique ignoring case
    full_name     TEXT,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    permissions   TEXT    NOT NULL DEFAULT '', -- per-user grants, space-separated
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT  NOT NULL
);
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (email_key);

-- One row per password grant; access tokens carry its id as `sid`.
CREATE TABLE logins (
    id         TEXT   PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope      TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX logins_user_id ON logins (user_id);

-- Refresh tokens are stored only as the hex SHA-256 of the token.
CREATE TABLE refresh_tokens (
    token_hash TEXT   PRIMARY KEY,
    login_id   TEXT   NOT NULL REFERENCES logins (id) ON DELETE CASCADE,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    spent_at   BIGINT
);
CREATE INDEX refresh_tokens_login_id ON refresh_tokens (login_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

CREATE TABLE items (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id    BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       TEXT    NOT NULL,
    description TEXT,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX items_owner_id ON items (owner_id);
