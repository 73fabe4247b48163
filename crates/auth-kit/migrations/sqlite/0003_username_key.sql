-- Usernames are unique by their folded form (width mapping, Unicode lower
-- case, NFC), computed in Rust by auth_kit::username::fold and stored here,
-- so the database's lower() (ASCII-only in SQLite, locale-dependent in
-- PostgreSQL) no longer decides who is the same user. postgres/0003 is the
-- same change.
--
-- Existing rows are filled in by the store when it opens the database
-- (Store::connect), since SQL cannot compute the fold. Until then their key
-- is NULL, which the unique index allows and the login lookup never finds.
ALTER TABLE users ADD COLUMN username_key TEXT;
DROP INDEX users_username_key;
CREATE UNIQUE INDEX users_username_key ON users (username_key);
