-- What the application role may do with paused queues: the API pauses and resumes them for an
-- operator's admin key, the worker's claims read them.
GRANT SELECT, INSERT, DELETE ON job_paused_queue TO evidence_app;

-- An operator's cancel or retry of an ingest job records a custody entry (…0005_custody). Made
-- through the API, the entry names the API key that asked, not the database role: the API sets
-- `app.actor` for the transaction (`set_config(.., true)`) to
-- {"kind": "api_key", "id": <key id>, "name": <key name>, "request_id": <x-request-id>}.
-- Without it (psql), the entry names the database role, as before.
CREATE OR REPLACE FUNCTION evidence_follows_ingest_job() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    moved evidence%ROWTYPE;
    actor jsonb := nullif(current_setting('app.actor', true), '')::jsonb;
    actor_kind text := coalesce(actor ->> 'kind', 'operator');
    actor_id text := coalesce(actor ->> 'id', session_user::text);
    actor_name text := coalesce(actor ->> 'name', format('job %s by hand', NEW.id));
    request_id text := actor ->> 'request_id';
BEGIN
    IF NEW.state = 'cancelled' THEN
        UPDATE evidence
        SET status = 'index_error', attempts = NEW.attempt, updated_at = now(),
            last_error = format('the ingest job (%s) was cancelled by an operator; reindex to try again', NEW.id)
        WHERE id = (NEW.payload ->> 'evidence_id')::uuid AND job_id = NEW.id AND status = 'queued'
        RETURNING * INTO moved;
        IF FOUND THEN
            PERFORM custody_append(moved.tenant_id, moved.id, 'failed', actor_kind, actor_id, actor_name,
                                   request_id,
                                   jsonb_build_object('reason', moved.last_error, 'attempts', NEW.attempt));
        END IF;
    ELSE
        UPDATE evidence
        SET status = 'queued', queued_at = now(), updated_at = now(), attempts = 0, last_error = NULL
        WHERE id = (NEW.payload ->> 'evidence_id')::uuid AND job_id = NEW.id AND status = 'index_error'
        RETURNING * INTO moved;
        IF FOUND THEN
            PERFORM custody_append(moved.tenant_id, moved.id, 'reindexed', actor_kind, actor_id, actor_name,
                                   request_id,
                                   jsonb_build_object('from', 'index_error', 'job_id', NEW.id));
        END IF;
    END IF;
    RETURN NULL;
END
$$;
