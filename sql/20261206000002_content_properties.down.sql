ALTER TABLE content DROP COLUMN properties;
