-- The refresh-token reuse window: a rotated token keeps its successor, so
-- presenting it again within REFRESH_TOKEN_REUSE_SECONDS gets the same
-- successor instead of revoking the login. Never a usable token: the
-- successor's SHA-256, and the successor sealed (ChaCha20-Poly1305) under a
-- key derived from the rotated token, which only its holder has.
ALTER TABLE refresh_tokens ADD COLUMN successor_hash TEXT;
ALTER TABLE refresh_tokens ADD COLUMN successor_sealed TEXT;
