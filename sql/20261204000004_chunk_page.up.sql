-- The page of paged text (a PDF) each chunk starts on: chunks are cut at page breaks, so a
-- search hit can say which page its snippet is on. NULL for text without pages, and for
-- chunks made before this column (a reindex with `outdated` makes them again).
ALTER TABLE content_chunk ADD COLUMN page integer CONSTRAINT content_chunk_page_check CHECK (page >= 1);
