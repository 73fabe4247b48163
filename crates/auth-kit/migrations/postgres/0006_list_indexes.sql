-- Keyset pagination reads a user's items in id order, and the item quota
-- counts them: one index on (owner, id) serves both, replacing the index on
-- the owner alone.
CREATE INDEX items_owner_id_id ON items (owner_id, id);
DROP INDEX items_owner_id;
CREATE INDEX subject_items_owner_sub_id ON subject_items (owner_sub, id);
DROP INDEX subject_items_owner_sub;
