-- Email verification and password reset, SQLite dialect
-- (postgres/0005_account_lifecycle.sql is the same schema).

-- Existing users start unverified.
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;

-- Single-use tokens mailed to a user: stored only as the hex SHA-256 of the
-- token. One live token per user and purpose: issuing a new one replaces
-- the previous (the primary key), spending one deletes it. `email_key` is
-- the address it was mailed to, so a verification only ever confirms that
-- address.
CREATE TABLE account_tokens (
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT   NOT NULL,                -- 'reset_password' or 'verify_email'
    token_hash TEXT   NOT NULL,
    email_key  TEXT   NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, purpose)
);
CREATE UNIQUE INDEX account_tokens_token_hash ON account_tokens (token_hash);
CREATE INDEX account_tokens_expires_at ON account_tokens (expires_at);
