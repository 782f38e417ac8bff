-- Why a content row has less text than its file may hold, as one of a fixed set (beside the
-- words of extract_note), so that the listing can filter by it: `GET /v1/evidence?text_reason=`.
-- NULL: all the text there is was indexed. The names are `extract::TextReason`'s.
ALTER TABLE content
    ADD COLUMN text_reason text,
    ADD CONSTRAINT content_text_reason_check CHECK (text_reason IN (
        'no_text_layer', 'encrypted', 'unsupported_type', 'corrupt', 'timeout', 'too_large', 'truncated'));

-- Rows extracted before this migration get the reason their note gives, in the words the
-- extractor wrote then. A child killed at a limit was not told apart then (memory or CPU):
-- too_large.
UPDATE content SET text_reason = CASE
    WHEN text_truncated THEN 'truncated'
    WHEN extract_note LIKE 'no text extractor for %' THEN 'unsupported_type'
    WHEN extract_note LIKE '% byte parsing limit;%' THEN 'too_large'
    WHEN extract_note LIKE 'no text found in this application/pdf%' THEN 'no_text_layer'
    WHEN extract_note LIKE 'text extraction failed: took longer than %' THEN 'timeout'
    WHEN extract_note LIKE 'text extraction failed: extractor was killed%' THEN 'too_large'
    WHEN extract_note LIKE 'text extraction failed: %' THEN 'corrupt'
END
WHERE extract_note IS NOT NULL OR text_truncated;

CREATE INDEX content_text_reason_idx ON content (tenant_id, text_reason) WHERE text_reason IS NOT NULL;
