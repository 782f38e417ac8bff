-- Evidence whose name has several extensions is found by its name without any:
-- `backup-2024` finds `backup-2024.tar.gz` (its name without the last extension,
-- `backup-2024.tar`, is one token again). New evidence has it in its metadata words
-- (store::metadata_text); this adds it to the evidence made before, as 20261207000005 did for
-- the name without its last extension.
UPDATE evidence
SET meta_tsv = meta_tsv || to_tsvector('english', split_part(filename, '.', 1))
WHERE filename LIKE '%.%.%';
