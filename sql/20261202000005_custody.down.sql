-- The trigger function as …0002 made it.
CREATE OR REPLACE FUNCTION evidence_follows_ingest_job() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF NEW.state = 'cancelled' THEN
        UPDATE evidence
        SET status = 'index_error', attempts = NEW.attempt, updated_at = now(),
            last_error = format('the ingest job (%s) was cancelled by an operator; reindex to try again', NEW.id)
        WHERE id = (NEW.payload ->> 'evidence_id')::uuid AND job_id = NEW.id AND status = 'queued';
    ELSE
        UPDATE evidence
        SET status = 'queued', queued_at = now(), updated_at = now(), attempts = 0, last_error = NULL
        WHERE id = (NEW.payload ->> 'evidence_id')::uuid AND job_id = NEW.id AND status = 'index_error';
    END IF;
    RETURN NULL;
END
$$;

DROP TABLE custody_entry;
DROP TABLE custody_head;
DROP FUNCTION custody_seal(integer);
DROP FUNCTION custody_append(text, uuid, text, text, text, text, text, jsonb);
DROP FUNCTION custody_encoding(text, bigint, text, uuid, text, text, text, text, text, timestamptz, text);
DROP FUNCTION custody_entry_is_append_only();
DROP TRIGGER evidence_custody_fields_are_kept ON evidence;
DROP FUNCTION evidence_custody_fields_are_kept();
ALTER TABLE evidence DROP COLUMN custodian, DROP COLUMN collected_at, DROP COLUMN source;
