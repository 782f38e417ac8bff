ALTER TABLE content DROP COLUMN text_reason;
