-- The lease index without `state = 'running'` in its predicate (the queue's own schema, linked
-- from jobs/queue/migrations).
--
-- job_running_lease_idx (WHERE state = 'running') served the rescuer, but any statement that says
-- `state = 'running'` may use it, and the batch completion and the heartbeat do
-- (`id = ANY($ids) AND state = 'running' AND lease_token = ANY($tokens)`). After a burst of claims
-- the statistics say "no running rows", so the planner preferred that small-looking index to the
-- primary key, and the index holds an entry for every row that was running since the last vacuum:
-- each completion of 5,000 jobs read every one of them (EXPLAIN (ANALYZE, BUFFERS) halfway through
-- a 500k burn-down: "Rows Removed by Filter: 255125", 80-110 ms). The burn-down slowed as it went.
--
-- Keyed on locked_until, which is set exactly while a job runs (the constraint below says so), the
-- index still serves the rescuer (`locked_until < now()` implies `locked_until IS NOT NULL`), and
-- no `state = 'running'` filter can pick it: completions and heartbeats use the primary key.
ALTER TABLE job ADD CONSTRAINT job_lease_only_while_running CHECK (state = 'running' OR locked_until IS NULL);
CREATE INDEX job_lease_idx ON job (locked_until) WHERE locked_until IS NOT NULL;
DROP INDEX job_running_lease_idx;
