-- fixity_due takes the content due first in the order (fixity_checked_at NULLS FIRST,
-- tenant_id, sha256). The index on fixity_checked_at alone gave the first key only, so with many
-- contents never checked (all with NULL: loaded or migrated data) every due row was read and
-- sorted before the first 100 were taken: about 0.5 s at 100,000, every sweep batch. In the
-- order of the whole key, the scan stops after the batch.
CREATE INDEX content_fixity_due_order_idx ON content (fixity_checked_at NULLS FIRST, tenant_id, sha256);
DROP INDEX content_fixity_due_idx;
