-- The items table is created by auth-kit's first migration (0001_init.sql,
-- kept as it was released); this service owns it from here on.
-- Keyset pagination reads a user's items in id order, and the item quota
-- counts them: one index on (owner, id) serves both, replacing the index on
-- the owner alone. Idempotent: a database an earlier kit migrated (its
-- migration 0006 did the same) is left as it is.
CREATE INDEX IF NOT EXISTS items_owner_id_id ON items (owner_id, id);
DROP INDEX IF EXISTS items_owner_id;
