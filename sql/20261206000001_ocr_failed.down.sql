UPDATE content SET text_reason = 'corrupt' WHERE text_reason = 'ocr_failed';
ALTER TABLE content DROP CONSTRAINT content_text_reason_check;
ALTER TABLE content ADD CONSTRAINT content_text_reason_check CHECK (text_reason IN (
    'no_text_layer', 'encrypted', 'unsupported_type', 'corrupt', 'timeout', 'too_large', 'truncated'));
