DROP INDEX evidence_parent_idx;
DROP INDEX evidence_family_root_idx;
-- Fails while two members share their bytes: going back needs those children deleted first.
DROP INDEX evidence_object_key_unique;
ALTER TABLE evidence ADD CONSTRAINT evidence_object_key_unique UNIQUE (object_key);
ALTER TABLE evidence
    DROP CONSTRAINT evidence_member_check,
    DROP CONSTRAINT evidence_parent_fkey,
    DROP CONSTRAINT evidence_family_root_fkey,
    DROP COLUMN family_root,
    DROP COLUMN family_note,
    DROP COLUMN depth,
    DROP COLUMN member_path,
    DROP COLUMN parent_id;
ALTER TABLE evidence DROP CONSTRAINT evidence_tenant_id_id_unique;
