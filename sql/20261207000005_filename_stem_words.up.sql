-- Evidence is found by its filename without the extension: `INV-2024-0042` finds
-- `INV-2024-0042.pdf`. The parser reads a whole filename as one token (`inv-2024-0042.pdf`), and
-- its punctuation-split form holds `2024` and `0042` where the query holds `-2024` and `-0042`
-- (what the same identifier in a text is made of). New evidence has the name without its
-- extension in its metadata words (store::metadata_text); this adds it to the evidence made
-- before. `||` puts the added words after the others, in their own order, so a phrase within the
-- name still matches.
UPDATE evidence
SET meta_tsv = meta_tsv || to_tsvector('english', regexp_replace(filename, '\.[^.]*$', ''))
WHERE filename LIKE '%.%';
