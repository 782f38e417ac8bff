-- Verified bytes live where no client can write: once the worker has hashed an upload, it
-- stores the bytes at `<tenant>/content/<sha256>` (a key no presigned URL ever names), and
-- `stored_key` says where an evidence's verified bytes are. Download, reindex and fixity read
-- only from there. Evidence verified before this migration keeps its bytes at its upload key
-- until a reindex moves them (after checking them against the recorded sha256).
ALTER TABLE evidence ADD COLUMN stored_key text;
UPDATE evidence SET stored_key = object_key WHERE sha256 IS NOT NULL;
ALTER TABLE evidence ADD CONSTRAINT evidence_verified_is_stored CHECK (sha256 IS NULL OR stored_key IS NOT NULL);

-- SHA-1 and MD5 of the same bytes, from the same pass as the sha256 (what e-discovery tools
-- exchange). Null for content verified before this migration, until a reindex fills them in.
ALTER TABLE content
    ADD COLUMN sha1 text CONSTRAINT content_sha1_hex CHECK (sha1 ~ '^[0-9a-f]{40}$'),
    ADD COLUMN md5 text CONSTRAINT content_md5_hex CHECK (md5 ~ '^[0-9a-f]{32}$');
CREATE INDEX content_sha1_idx ON content (tenant_id, sha1) WHERE sha1 IS NOT NULL;
CREATE INDEX content_md5_idx ON content (tenant_id, md5) WHERE md5 IS NOT NULL;
GRANT UPDATE (sha1, md5) ON content TO evidence_app;

-- The verified hash is never rewritten, by the service or by anyone else: a reindex that finds
-- other bytes ends in index_error and keeps the hash it had.
CREATE FUNCTION evidence_sha256_is_kept() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.sha256 IS NOT NULL AND NEW.sha256 IS DISTINCT FROM OLD.sha256 THEN
        RAISE EXCEPTION 'the verified sha256 of evidence % is % and cannot be changed', OLD.id, OLD.sha256
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER evidence_sha256_is_kept BEFORE UPDATE OF sha256 ON evidence
    FOR EACH ROW EXECUTE FUNCTION evidence_sha256_is_kept();
