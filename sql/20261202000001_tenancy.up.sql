-- Tenants, API keys, and row-level security: every evidence, content and chunk row belongs to
-- one tenant, and the application role sees only the rows of the tenant its transaction names
-- (`set_config('app.tenant_id', <tenant>, true)`), whatever its queries say. ARCHITECTURE.md
-- ("Access control") explains the two walls; README.md says how an operator sets up the roles.

CREATE TABLE tenant (
    -- Also the first segment of the tenant's object keys, hence the narrow alphabet.
    id          text        PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenant_id_format CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$')
);

-- Evidence from before tenancy belongs to the tenant `default`.
INSERT INTO tenant (id) SELECT 'default' WHERE EXISTS (SELECT 1 FROM content) OR EXISTS (SELECT 1 FROM evidence);

-- Content (and so deduplication) is per tenant: the same bytes in two tenants are two rows, and
-- neither tenant can learn that the other holds them.
ALTER TABLE evidence DROP CONSTRAINT evidence_sha256_fkey;
ALTER TABLE content_chunk DROP CONSTRAINT content_chunk_sha256_fkey;

ALTER TABLE content ADD COLUMN tenant_id text NOT NULL DEFAULT 'default' REFERENCES tenant (id);
ALTER TABLE content ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE content DROP CONSTRAINT content_pkey;
ALTER TABLE content ADD PRIMARY KEY (tenant_id, sha256);

ALTER TABLE content_chunk ADD COLUMN tenant_id text NOT NULL DEFAULT 'default';
ALTER TABLE content_chunk ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE content_chunk DROP CONSTRAINT content_chunk_pkey;
ALTER TABLE content_chunk ADD PRIMARY KEY (tenant_id, sha256, seq);
ALTER TABLE content_chunk ADD CONSTRAINT content_chunk_content_fkey
    FOREIGN KEY (tenant_id, sha256) REFERENCES content (tenant_id, sha256) ON DELETE CASCADE;

ALTER TABLE evidence ADD COLUMN tenant_id text NOT NULL DEFAULT 'default' REFERENCES tenant (id);
ALTER TABLE evidence ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE evidence ADD CONSTRAINT evidence_content_fkey
    FOREIGN KEY (tenant_id, sha256) REFERENCES content (tenant_id, sha256);
-- An Idempotency-Key is the client's: two tenants may use the same one.
ALTER TABLE evidence DROP CONSTRAINT evidence_idempotency_key_unique;
ALTER TABLE evidence ADD CONSTRAINT evidence_idempotency_key_unique UNIQUE (tenant_id, idempotency_key);

-- Every listing is within one tenant: the tenant leads each index.
DROP INDEX evidence_created_idx;
DROP INDEX evidence_status_created_idx;
DROP INDEX evidence_case_created_idx;
DROP INDEX evidence_sha256_idx;
CREATE INDEX evidence_created_idx ON evidence (tenant_id, created_at DESC, id DESC);
CREATE INDEX evidence_status_created_idx ON evidence (tenant_id, status, created_at DESC, id DESC);
CREATE INDEX evidence_case_created_idx ON evidence (tenant_id, case_id, created_at DESC, id DESC)
    WHERE case_id IS NOT NULL;
CREATE INDEX evidence_sha256_idx ON evidence (tenant_id, sha256);

-- API keys: `evk_<prefix>_<secret>`. Only the SHA-256 of the whole key is kept; the prefix is
-- public (it names the key in listings and logs). The secret is 256 random bits, so a plain
-- SHA-256 is enough (no slow hash is needed against guessing).
CREATE TABLE api_key (
    id             uuid        PRIMARY KEY,
    tenant_id      text        NOT NULL REFERENCES tenant (id),
    prefix         text        NOT NULL,
    secret_sha256  bytea       NOT NULL,
    name           text        NOT NULL,
    role           text        NOT NULL,
    -- The cases this key may touch; NULL: every case of its tenant.
    case_ids       text[],
    -- The admin key that made it; NULL: made on the command line (`api keys create`).
    created_by     uuid        REFERENCES api_key (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- Updated at most once a minute per key, so authentication is not a write per request.
    last_used_at   timestamptz,
    revoked_at     timestamptz,
    CONSTRAINT api_key_prefix_unique UNIQUE (prefix),
    CONSTRAINT api_key_prefix_format CHECK (prefix ~ '^[0-9a-f]{12}$'),
    CONSTRAINT api_key_secret_sha256_length CHECK (length(secret_sha256) = 32),
    CONSTRAINT api_key_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    CONSTRAINT api_key_role_check CHECK (role IN ('admin', 'uploader', 'viewer', 'auditor')),
    CONSTRAINT api_key_case_ids_not_empty CHECK (case_ids IS NULL OR cardinality(case_ids) > 0)
);
CREATE INDEX api_key_tenant_idx ON api_key (tenant_id, created_at);

-- The application role: what the API and the worker run as (they switch to it on every
-- connection). It owns nothing and has no BYPASSRLS, so the policies below hold for it. Roles
-- belong to the whole server, not to one database: it is created once and then reused.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'evidence_app') THEN
        CREATE ROLE evidence_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
EXCEPTION
    -- Another database's migration created it at the same moment.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

-- The table owner (who runs migrations and `api keys`) is not subject to the policies; the
-- application role is.
ALTER TABLE evidence ENABLE ROW LEVEL SECURITY;
ALTER TABLE content ENABLE ROW LEVEL SECURITY;
ALTER TABLE content_chunk ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_key ENABLE ROW LEVEL SECURITY;
-- Unset, the setting is NULL or '' and no row matches: a transaction that names no tenant sees
-- nothing and can write nothing.
CREATE POLICY evidence_tenant ON evidence USING (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY content_tenant ON content USING (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY content_chunk_tenant ON content_chunk USING (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY api_key_tenant ON api_key USING (tenant_id = current_setting('app.tenant_id', true));

-- What the application does, and nothing more: no DELETE of evidence or content, no DDL.
GRANT SELECT, INSERT, UPDATE ON evidence TO evidence_app;
GRANT SELECT, INSERT ON content, content_chunk TO evidence_app;
-- Not the key hashes: keys are checked by authenticate_api_key below.
GRANT SELECT (id, tenant_id, prefix, name, role, case_ids, created_by, created_at, last_used_at, revoked_at),
      INSERT, UPDATE (revoked_at) ON api_key TO evidence_app;
-- The queue's table (the queue knows nothing of tenants; the evidence job's payload names one).
GRANT SELECT, INSERT, UPDATE, DELETE ON job TO evidence_app;
-- For the `evidence_by_status` gauge: counts over every tenant, through the view (which runs
-- with its owner's rights), never the rows.
GRANT SELECT ON evidence_status_counts TO evidence_app;

-- The key whose prefix and hash these are, and whether it was revoked; its last use is noted
-- (at most once a minute). SECURITY DEFINER: before authentication there is no tenant to set,
-- and the application role cannot read key hashes at all.
-- PL/pgSQL, so its statements' plans are kept between calls, and the UPDATE runs only when the
-- last use is older than a minute: it is called once per request.
CREATE FUNCTION authenticate_api_key(key_prefix text, key_sha256 bytea)
RETURNS TABLE (key_id uuid, tenant_id text, name text, role text, case_ids text[], revoked boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    k api_key%ROWTYPE;
BEGIN
    SELECT * INTO k FROM api_key a WHERE a.prefix = key_prefix AND a.secret_sha256 = key_sha256;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF k.revoked_at IS NULL AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute') THEN
        UPDATE api_key a SET last_used_at = now() WHERE a.id = k.id;
    END IF;
    RETURN QUERY SELECT k.id, k.tenant_id, k.name, k.role, k.case_ids, k.revoked_at IS NOT NULL;
END
$$;
REVOKE ALL ON FUNCTION authenticate_api_key(text, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION authenticate_api_key(text, bytea) TO evidence_app;
