-- Evidence is found by its filename without the extension: `INV-2024-0042` finds
-- `INV-2024-0042.pdf`, and `backup-2024` finds `backup-2024.tar.gz`. The parser reads a whole
-- filename as one token (`inv-2024-0042.pdf`), and its punctuation-split form holds `2024` and
-- `0042` where the query holds `-2024` and `-0042` (what the same identifier in a text is made
-- of). New evidence has the name without its last extension, and (with several) without all of
-- them, in its metadata words (store::metadata_text); this adds them to the evidence made before,
-- in one pass over the table. `||` puts the added words after the others, in their own order, so
-- a phrase within the name still matches.
UPDATE evidence
SET meta_tsv = meta_tsv
    || to_tsvector('english', regexp_replace(filename, '\.[^.]*$', ''))
    || CASE WHEN filename LIKE '%.%.%' THEN to_tsvector('english', split_part(filename, '.', 1))
            ELSE ''::tsvector END
WHERE filename LIKE '%.%';
