-- Evidence: one row per file a client hands over, and the content-addressed text it yields.
-- Evidence status: awaiting_upload -> queued -> indexed | index_error (re-queued by reindex).

-- Extracted text, keyed by the sha256 of the bytes: identical uploads share one row.
CREATE TABLE content (
    sha256          text        PRIMARY KEY,
    size_bytes      bigint      NOT NULL,
    -- The type sniffed from the bytes (not the client's claim).
    media_type      text        NOT NULL,
    -- Which extractor produced the text: text, html, pdf, docx, or none.
    extractor       text        NOT NULL,
    text_bytes      bigint      NOT NULL DEFAULT 0,
    -- True when the text was longer than the indexing cap and only a prefix was indexed.
    text_truncated  boolean     NOT NULL DEFAULT false,
    -- Why there is no (or only partial) text, in words a person can act on.
    extract_note    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT content_sha256_hex CHECK (sha256 ~ '^[0-9a-f]{64}$')
);

-- The text in chunks of about 8 KB: each tsvector stays far below Postgres's 1 MB limit and
-- 16,383 word positions, and ts_headline only ever reads one chunk.
CREATE TABLE content_chunk (
    sha256  text    NOT NULL REFERENCES content (sha256) ON DELETE CASCADE,
    seq     integer NOT NULL,
    body    text    NOT NULL,
    tsv     tsvector NOT NULL,
    PRIMARY KEY (sha256, seq)
);
CREATE INDEX content_chunk_tsv_idx ON content_chunk USING gin (tsv);

CREATE TABLE evidence (
    id               uuid        PRIMARY KEY,
    filename         text        NOT NULL,
    -- What the client declared; the sniffed type is content.media_type.
    content_type     text        NOT NULL,
    size_bytes       bigint      NOT NULL,
    declared_sha256  text,
    case_id          text,
    tags             text[]      NOT NULL DEFAULT '{}',
    description      text,
    status           text        NOT NULL DEFAULT 'awaiting_upload',
    -- Made by the server (evidence/<id>), never from a client filename.
    object_key       text        NOT NULL,
    -- Set when indexed: the content this evidence points at, and whether it was already known.
    sha256           text        REFERENCES content (sha256),
    duplicate        boolean,
    -- Failed attempts of the current ingest, and the last reason (kept for index_error).
    attempts         integer     NOT NULL DEFAULT 0,
    last_error       text,
    -- The newest ingest job (jobs are pruned, so no foreign key).
    job_id           bigint,
    idempotency_key  text,
    request_id       text,
    -- Filename, tags and description, so evidence without text is still found by search.
    meta_tsv         tsvector    NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    queued_at        timestamptz,
    indexed_at       timestamptz,
    CONSTRAINT evidence_status_check CHECK (status IN ('awaiting_upload', 'queued', 'indexed', 'index_error')),
    CONSTRAINT evidence_size_check CHECK (size_bytes >= 0),
    CONSTRAINT evidence_declared_sha256_hex CHECK (declared_sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT evidence_indexed_has_content CHECK (status <> 'indexed' OR sha256 IS NOT NULL),
    CONSTRAINT evidence_object_key_unique UNIQUE (object_key),
    CONSTRAINT evidence_idempotency_key_unique UNIQUE (idempotency_key)
);

-- Listing with filters and keyset pagination (newest first).
CREATE INDEX evidence_created_idx ON evidence (created_at DESC, id DESC);
CREATE INDEX evidence_status_created_idx ON evidence (status, created_at DESC, id DESC);
CREATE INDEX evidence_case_created_idx ON evidence (case_id, created_at DESC, id DESC) WHERE case_id IS NOT NULL;
CREATE INDEX evidence_tags_idx ON evidence USING gin (tags);
CREATE INDEX evidence_sha256_idx ON evidence (sha256);
CREATE INDEX evidence_meta_tsv_idx ON evidence USING gin (meta_tsv);
