-- Views for people in psql (runbooks/jobs-by-hand.md, runbooks/observability.md).

-- Jobs per queue and state, with the age of the oldest runnable job.
CREATE VIEW job_queue_depth AS
SELECT queue, state, count(*) AS jobs,
       max(now() - run_at) FILTER (WHERE state = 'available' AND run_at <= now()) AS oldest_runnable_age
FROM job
GROUP BY queue, state;

-- The job that has waited longest to run, per queue.
CREATE VIEW job_oldest_waiting AS
SELECT DISTINCT ON (queue) queue, id, kind, run_at, now() - run_at AS waiting_for, attempt, last_error
FROM job
WHERE state = 'available' AND run_at <= now()
ORDER BY queue, run_at, id;

-- Running jobs whose lease has expired: their worker stopped renewing it. The rescuer hands them
-- back within WORKER_MAINTENANCE_INTERVAL_MS; rows that stay here mean no worker is running.
CREATE VIEW job_stuck AS
SELECT id, queue, kind, locked_by, locked_until, now() - locked_until AS expired_for, attempt, correlation_id
FROM job
WHERE state = 'running' AND locked_until < now();

-- The most recent failed attempts, one row per attempt, newest first.
CREATE VIEW job_recent_errors AS
SELECT j.id, j.queue, j.kind, j.state, (e ->> 'attempt')::int AS attempt, (e ->> 'at')::timestamptz AS failed_at,
       e ->> 'error' AS error, j.correlation_id
FROM job j, jsonb_array_elements(j.errors) AS e
WHERE j.errors <> '[]'::jsonb
ORDER BY failed_at DESC;

-- Evidence per status.
CREATE VIEW evidence_status_counts AS
SELECT status, count(*) AS evidence FROM evidence GROUP BY status;
