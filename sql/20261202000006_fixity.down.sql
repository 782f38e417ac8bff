DROP FUNCTION fixity_due(interval, integer);
DROP INDEX content_fixity_due_idx;
REVOKE UPDATE (fixity_checked_at) ON content FROM evidence_app;
ALTER TABLE evidence DROP COLUMN fixity_checked_at, DROP COLUMN fixity_ok;
ALTER TABLE content DROP COLUMN fixity_checked_at;
