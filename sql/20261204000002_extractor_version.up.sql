-- Which version of the extraction made a content row's text (`extract::EXTRACTOR_VERSION`):
-- when extraction improves, the version goes up, and an ingest of bytes whose row is older
-- (a reindex, one at a time or in bulk: POST /v1/reindex) extracts them again and
-- replaces the row's text, chunks and what was said of them. Rows from before this column
-- were made by version 1.
ALTER TABLE content ADD COLUMN extractor_version integer NOT NULL DEFAULT 1
    CONSTRAINT content_extractor_version_check CHECK (extractor_version >= 1);
ALTER TABLE content ALTER COLUMN extractor_version DROP DEFAULT;

-- The text is derived from the bytes and may be made again; what identifies the bytes may not:
-- no grant covers sha256 or size_bytes (sha1 and md5 have their own, to fill them in once: the
-- verified_content migration).
GRANT UPDATE (media_type, extractor, text_bytes, text_truncated, extract_note, text_reason, extractor_version)
    ON content TO evidence_app;
GRANT DELETE ON content_chunk TO evidence_app;

CREATE INDEX content_extractor_version_idx ON content (tenant_id, extractor_version);
