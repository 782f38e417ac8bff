-- content.extractor_version gets its default back: a worker of the release before, during a
-- rolling deploy or after a roll back, inserts content rows without the column, and version 1
-- is what it makes. (The extractor_version migration had dropped it; applied migrations are
-- not edited, so the fix is this one.)
ALTER TABLE content ALTER COLUMN extractor_version SET DEFAULT 1;
