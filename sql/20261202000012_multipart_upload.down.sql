ALTER TABLE evidence DROP COLUMN upload_id, DROP COLUMN upload_part_bytes;
