DROP FUNCTION uploads_to_expire(interval, integer);
DROP INDEX evidence_upload_purge_idx;
DROP INDEX evidence_upload_expiry_idx;
-- Expired evidence goes back to awaiting its upload (its window is gone with the column).
UPDATE evidence SET status = 'awaiting_upload' WHERE status = 'expired';
ALTER TABLE evidence DROP CONSTRAINT evidence_status_check;
ALTER TABLE evidence ADD CONSTRAINT evidence_status_check
    CHECK (status IN ('awaiting_upload', 'queued', 'indexed', 'index_error'));
ALTER TABLE evidence DROP COLUMN upload_purged_at, DROP COLUMN upload_expires_at;
