-- Abandoned uploads expire. Each evidence gets an upload window at create (`upload_expires_at`,
-- from the API's UPLOAD_EXPIRY_SECS; NULL: it never expires), and no presigned PUT outlives it.
-- Once the window has closed, the worker's sweep marks the evidence `expired` (in its tenant's
-- transaction, with a custody entry; a complete that got there first wins, as both take the row's
-- lock) and then deletes its staging object, recording that in `upload_purged_at`.
ALTER TABLE evidence
    ADD COLUMN upload_expires_at timestamptz,
    ADD COLUMN upload_purged_at timestamptz;
ALTER TABLE evidence DROP CONSTRAINT evidence_status_check;
ALTER TABLE evidence ADD CONSTRAINT evidence_status_check
    CHECK (status IN ('awaiting_upload', 'queued', 'indexed', 'index_error', 'expired'));
-- Evidence already waiting for its bytes gets the default window (one day) from its creation.
UPDATE evidence SET upload_expires_at = created_at + interval '1 day' WHERE status = 'awaiting_upload';
CREATE INDEX evidence_upload_expiry_idx ON evidence (upload_expires_at) WHERE status = 'awaiting_upload';
CREATE INDEX evidence_upload_purge_idx ON evidence (updated_at) WHERE status = 'expired' AND upload_purged_at IS NULL;

-- Over every tenant, for the worker's sweep, which then works in each tenant's own transaction
-- (SECURITY DEFINER: the application role sees one tenant at a time). `grace` allows for clocks
-- that differ between the API that signed the URL and the database.
CREATE FUNCTION uploads_to_expire(grace interval, max_rows integer)
RETURNS TABLE (tenant_id text, id uuid, expired boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    (SELECT e.tenant_id, e.id, false FROM evidence e
     WHERE e.status = 'awaiting_upload' AND e.upload_expires_at < now() - grace
     ORDER BY e.upload_expires_at LIMIT max_rows)
    UNION ALL
    (SELECT e.tenant_id, e.id, true FROM evidence e
     WHERE e.status = 'expired' AND e.upload_purged_at IS NULL
     ORDER BY e.updated_at LIMIT max_rows)
$$;
REVOKE ALL ON FUNCTION uploads_to_expire(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION uploads_to_expire(interval, integer) TO evidence_app;
