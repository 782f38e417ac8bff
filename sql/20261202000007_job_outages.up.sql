-- Attempts given back because a dependency was unreachable (the queue's own schema, linked from
-- jobs/queue/migrations). A job that failed only because the object store or the database could
-- not be reached is postponed with its attempt given back and counted here instead, against the
-- kind's much larger outage budget (KindOptions::max_outages), so an outage longer than the
-- retry budget does not fail items that are fine.
ALTER TABLE job ADD COLUMN outages integer NOT NULL DEFAULT 0;
ALTER TABLE job ADD CONSTRAINT job_outages_check CHECK (outages >= 0);
COMMENT ON COLUMN job.outages IS
    'attempts given back because a dependency was unreachable; errors entries of those attempts carry "outage": true';
