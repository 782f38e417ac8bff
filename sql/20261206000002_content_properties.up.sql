-- What a document says of itself (title, author, created, modified, pages, application, an
-- e-mail's to and cc), as `extract::Properties` serialises it: only the keys the file states.
-- NULL for content extracted before this column (a reindex with `outdated` reads it again) and
-- for files that state none.
ALTER TABLE content ADD COLUMN properties jsonb
    CONSTRAINT content_properties_check CHECK (jsonb_typeof(properties) = 'object');
-- A read again replaces them with the rest of what extraction made (`store::replace_content`).
GRANT UPDATE (properties) ON content TO evidence_app;
