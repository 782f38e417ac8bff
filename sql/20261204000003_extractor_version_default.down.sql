ALTER TABLE content ALTER COLUMN extractor_version DROP DEFAULT;
