-- Runs under an exclusive lock on `evidence` while it builds three indexes and checks the new
-- constraints against every row: on a large table, apply it in a quiet moment.

-- Families: the members of a container (a ZIP archive's files, an e-mail's attachments) are
-- evidence of their own, each pointing at the evidence it was found in. A child is made by the
-- worker in the transaction that indexes its parent, already `queued`, with its own ingest job.
-- Its id is derived from the parent's id, its place and its path inside the parent, so a
-- parent read again (a retry, a reindex) makes no second child. A family (the file handed over
-- and every member below it) holds at most INGEST_FAMILY_MAX_MEMBERS members: the worker
-- counts them by `family_root` with the root's row locked.

-- Parent and child are in one tenant: the foreign key names both columns.
ALTER TABLE evidence ADD CONSTRAINT evidence_tenant_id_id_unique UNIQUE (tenant_id, id);

ALTER TABLE evidence
    -- The evidence this one was found in; NULL for a file handed over.
    ADD COLUMN parent_id uuid,
    -- Where it was inside the parent: a ZIP entry's path, an attachment's name.
    ADD COLUMN member_path text,
    -- 0 for a file handed over, its parent's depth + 1 for a member.
    ADD COLUMN depth integer NOT NULL DEFAULT 0,
    -- The file handed over that a member's family descends from; NULL for that file itself.
    ADD COLUMN family_root uuid,
    -- Members of this container that were not made evidence, and why (limits, unreadable).
    ADD COLUMN family_note text,
    ADD CONSTRAINT evidence_parent_fkey FOREIGN KEY (tenant_id, parent_id) REFERENCES evidence (tenant_id, id),
    ADD CONSTRAINT evidence_family_root_fkey FOREIGN KEY (tenant_id, family_root) REFERENCES evidence (tenant_id, id),
    ADD CONSTRAINT evidence_member_check
        CHECK ((parent_id IS NULL) = (member_path IS NULL) AND (parent_id IS NULL) = (depth = 0)
               AND (parent_id IS NULL) = (family_root IS NULL) AND depth >= 0);

-- A file handed over has an upload key of its own (`<tenant>/uploads/<id>`); a member's bytes
-- are stored by the worker straight at their content key (`<tenant>/content/<sha256>`), which
-- members with the same bytes share (a file twice in an archive, one attachment in two e-mails).
ALTER TABLE evidence DROP CONSTRAINT evidence_object_key_unique;
CREATE UNIQUE INDEX evidence_object_key_unique ON evidence (object_key) WHERE parent_id IS NULL;

-- A family's members, counted against its limit.
CREATE INDEX evidence_family_root_idx ON evidence (tenant_id, family_root) WHERE family_root IS NOT NULL;

-- A container's children, for the listing filtered by parent.
CREATE INDEX evidence_parent_idx ON evidence (tenant_id, parent_id, created_at DESC, id DESC) WHERE parent_id IS NOT NULL;
