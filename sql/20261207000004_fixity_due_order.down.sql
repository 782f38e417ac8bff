CREATE INDEX content_fixity_due_idx ON content (fixity_checked_at NULLS FIRST);
DROP INDEX content_fixity_due_order_idx;
