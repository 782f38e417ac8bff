DROP TRIGGER evidence_sha256_is_kept ON evidence;
DROP FUNCTION evidence_sha256_is_kept();
REVOKE UPDATE (sha1, md5) ON content FROM evidence_app;
DROP INDEX content_md5_idx;
DROP INDEX content_sha1_idx;
ALTER TABLE content DROP COLUMN md5, DROP COLUMN sha1;
ALTER TABLE evidence DROP CONSTRAINT evidence_verified_is_stored;
ALTER TABLE evidence DROP COLUMN stored_key;
