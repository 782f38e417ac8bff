-- The trigger function as …0005_custody made it.
CREATE OR REPLACE FUNCTION evidence_follows_ingest_job() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    moved evidence%ROWTYPE;
BEGIN
    IF NEW.state = 'cancelled' THEN
        UPDATE evidence
        SET status = 'index_error', attempts = NEW.attempt, updated_at = now(),
            last_error = format('the ingest job (%s) was cancelled by an operator; reindex to try again', NEW.id)
        WHERE id = (NEW.payload ->> 'evidence_id')::uuid AND job_id = NEW.id AND status = 'queued'
        RETURNING * INTO moved;
        IF FOUND THEN
            PERFORM custody_append(moved.tenant_id, moved.id, 'failed', 'operator', session_user::text,
                                   format('job %s by hand', NEW.id), NULL,
                                   jsonb_build_object('reason', moved.last_error, 'attempts', NEW.attempt));
        END IF;
    ELSE
        UPDATE evidence
        SET status = 'queued', queued_at = now(), updated_at = now(), attempts = 0, last_error = NULL
        WHERE id = (NEW.payload ->> 'evidence_id')::uuid AND job_id = NEW.id AND status = 'index_error'
        RETURNING * INTO moved;
        IF FOUND THEN
            PERFORM custody_append(moved.tenant_id, moved.id, 'reindexed', 'operator', session_user::text,
                                   format('job %s by hand', NEW.id), NULL,
                                   jsonb_build_object('from', 'index_error', 'job_id', NEW.id));
        END IF;
    END IF;
    RETURN NULL;
END
$$;

REVOKE SELECT, INSERT, DELETE ON job_paused_queue FROM evidence_app;
