-- Items owned by a user of another identity provider (Supabase), named by
-- the token's `sub` (a UUID): there is no local user row to reference.
CREATE TABLE subject_items (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_sub   TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    description TEXT,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX subject_items_owner_sub ON subject_items (owner_sub);
