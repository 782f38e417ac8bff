-- The queue's views for people in psql (runbooks/jobs-by-hand.md, runbooks/observability.md).
-- They belong to the queue's own schema (jobs/queue/migrations). 20261128000003_ops_views first
-- created them together with an evidence view; this migration owns them from now on.
-- CREATE OR REPLACE, so a database migrated before the split and a new one end up the same.

-- Jobs per queue and state, with the age of the oldest runnable job.
CREATE OR REPLACE VIEW job_queue_depth AS
SELECT queue, state, count(*) AS jobs,
       max(now() - run_at) FILTER (WHERE state = 'available' AND run_at <= now()) AS oldest_runnable_age
FROM job
GROUP BY queue, state;

-- The job that has waited longest to run, per queue.
CREATE OR REPLACE VIEW job_oldest_waiting AS
SELECT DISTINCT ON (queue) queue, id, kind, run_at, now() - run_at AS waiting_for, attempt, last_error
FROM job
WHERE state = 'available' AND run_at <= now()
ORDER BY queue, run_at, id;

-- Running jobs whose lease has expired: their worker stopped renewing it. The rescuer hands them
-- back within WORKER_MAINTENANCE_INTERVAL_MS; rows that stay here mean no worker is running.
CREATE OR REPLACE VIEW job_stuck AS
SELECT id, queue, kind, locked_by, locked_until, now() - locked_until AS expired_for, attempt, correlation_id
FROM job
WHERE state = 'running' AND locked_until < now();

-- The most recent failed attempts, one row per attempt, newest first.
CREATE OR REPLACE VIEW job_recent_errors AS
SELECT j.id, j.queue, j.kind, j.state, (e ->> 'attempt')::int AS attempt, (e ->> 'at')::timestamptz AS failed_at,
       e ->> 'error' AS error, j.correlation_id
FROM job j, jsonb_array_elements(j.errors) AS e
WHERE j.errors <> '[]'::jsonb
ORDER BY failed_at DESC;
