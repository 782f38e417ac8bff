-- An operator's action on an ingest job moves its evidence too, in the same transaction, whoever
-- makes it (psql with runbooks/jobs-by-hand.md, or the service): cancelling the job ends the
-- evidence in index_error with the reason, and retrying a discarded or cancelled job queues the
-- evidence again. The worker's own transitions (retry after a failure, discard through the
-- on_discard hook) are not operator actions and do not fire it. The queue's own schema knows
-- nothing of this: the trigger belongs to the evidence schema.
CREATE FUNCTION evidence_follows_ingest_job() RETURNS trigger
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

CREATE TRIGGER evidence_follows_ingest_job
AFTER UPDATE OF state ON job
FOR EACH ROW
WHEN (NEW.kind = 'ingest_evidence'
      AND ((NEW.state = 'cancelled' AND OLD.state IN ('available', 'running'))
           OR (NEW.state = 'available' AND OLD.state IN ('discarded', 'cancelled'))))
EXECUTE FUNCTION evidence_follows_ingest_job();
