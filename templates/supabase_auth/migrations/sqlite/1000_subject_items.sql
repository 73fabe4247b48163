-- Items owned by a user of the identity provider, named by the token's
-- `sub` (a UUID): there is no local user row to reference. Keyset
-- pagination reads an owner's items in id order: one index on (owner, id).
-- Idempotent: a database an earlier auth-kit migrated (its migrations 0002
-- and 0006 created the same table and index) is left as it is.
CREATE TABLE IF NOT EXISTS subject_items (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_sub   TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    description TEXT,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX IF NOT EXISTS subject_items_owner_sub_id ON subject_items (owner_sub, id);
DROP INDEX IF EXISTS subject_items_owner_sub;
