ALTER TABLE content_chunk DROP COLUMN page;
