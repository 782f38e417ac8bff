DROP INDEX content_extractor_version_idx;
REVOKE DELETE ON content_chunk FROM evidence_app;
REVOKE UPDATE (media_type, extractor, text_bytes, text_truncated, extract_note, text_reason, extractor_version)
    ON content FROM evidence_app;
ALTER TABLE content DROP COLUMN extractor_version;
