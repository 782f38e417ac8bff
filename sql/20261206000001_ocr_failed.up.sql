-- OCR (images, PDF pages without a text layer) can fail on a file: a reason of its own.
ALTER TABLE content DROP CONSTRAINT content_text_reason_check;
ALTER TABLE content ADD CONSTRAINT content_text_reason_check CHECK (text_reason IN (
    'no_text_layer', 'ocr_failed', 'encrypted', 'unsupported_type', 'corrupt', 'timeout', 'too_large', 'truncated'));
