-- Fixity: the worker re-hashes stored bytes periodically (FIXITY_INTERVAL_SECS) and records each
-- result on the content, on every evidence stored there, and in their custody. Verification at
-- ingest counts as the first check.
ALTER TABLE content ADD COLUMN fixity_checked_at timestamptz;
ALTER TABLE evidence
    ADD COLUMN fixity_checked_at timestamptz,
    ADD COLUMN fixity_ok boolean;
GRANT UPDATE (fixity_checked_at) ON content TO evidence_app;
CREATE INDEX content_fixity_due_idx ON content (fixity_checked_at NULLS FIRST);

-- The content due for a check, over every tenant (one sweep serves them all; each check then
-- runs in its own tenant's transaction). Only bytes at their content key
-- (`<tenant>/content/<sha256>`, as storage::content_key makes it): bytes verified before
-- content keys are checked by their next reindex instead. SECURITY DEFINER: the application
-- role sees one tenant at a time.
CREATE FUNCTION fixity_due(older_than interval, max_rows integer)
RETURNS TABLE (tenant_id text, sha256 text, size_bytes bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT c.tenant_id, c.sha256, c.size_bytes FROM content c
    WHERE (c.fixity_checked_at IS NULL OR c.fixity_checked_at < now() - older_than)
      AND EXISTS (SELECT 1 FROM evidence e
                  WHERE e.tenant_id = c.tenant_id AND e.sha256 = c.sha256
                    AND e.stored_key = c.tenant_id || '/content/' || c.sha256)
    ORDER BY c.fixity_checked_at NULLS FIRST, c.tenant_id, c.sha256
    LIMIT max_rows
$$;
REVOKE ALL ON FUNCTION fixity_due(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fixity_due(interval, integer) TO evidence_app;
