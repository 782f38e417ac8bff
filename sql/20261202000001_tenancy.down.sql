-- Back to one shared space. Fails (and changes nothing) when two tenants hold the same bytes or
-- the same Idempotency-Key: those rows would collide. The role evidence_app is left in place:
-- roles belong to the server, and other databases may use it.
DROP FUNCTION authenticate_api_key(text, bytea);
REVOKE ALL ON evidence, content, content_chunk, job, evidence_status_counts FROM evidence_app;

DROP POLICY evidence_tenant ON evidence;
DROP POLICY content_tenant ON content;
DROP POLICY content_chunk_tenant ON content_chunk;
ALTER TABLE evidence DISABLE ROW LEVEL SECURITY;
ALTER TABLE content DISABLE ROW LEVEL SECURITY;
ALTER TABLE content_chunk DISABLE ROW LEVEL SECURITY;
DROP TABLE api_key;

DROP INDEX evidence_created_idx;
DROP INDEX evidence_status_created_idx;
DROP INDEX evidence_case_created_idx;
DROP INDEX evidence_sha256_idx;
CREATE INDEX evidence_created_idx ON evidence (created_at DESC, id DESC);
CREATE INDEX evidence_status_created_idx ON evidence (status, created_at DESC, id DESC);
CREATE INDEX evidence_case_created_idx ON evidence (case_id, created_at DESC, id DESC) WHERE case_id IS NOT NULL;
CREATE INDEX evidence_sha256_idx ON evidence (sha256);

ALTER TABLE evidence DROP CONSTRAINT evidence_idempotency_key_unique;
ALTER TABLE evidence ADD CONSTRAINT evidence_idempotency_key_unique UNIQUE (idempotency_key);
ALTER TABLE evidence DROP CONSTRAINT evidence_content_fkey;
ALTER TABLE content_chunk DROP CONSTRAINT content_chunk_content_fkey;
ALTER TABLE content_chunk DROP CONSTRAINT content_chunk_pkey;
ALTER TABLE content_chunk ADD PRIMARY KEY (sha256, seq);
ALTER TABLE content DROP CONSTRAINT content_pkey;
ALTER TABLE content ADD PRIMARY KEY (sha256);
ALTER TABLE content_chunk ADD CONSTRAINT content_chunk_sha256_fkey
    FOREIGN KEY (sha256) REFERENCES content (sha256) ON DELETE CASCADE;
ALTER TABLE evidence ADD CONSTRAINT evidence_sha256_fkey FOREIGN KEY (sha256) REFERENCES content (sha256);
ALTER TABLE evidence DROP COLUMN tenant_id;
ALTER TABLE content_chunk DROP COLUMN tenant_id;
ALTER TABLE content DROP COLUMN tenant_id;
DROP TABLE tenant;
