DROP VIEW IF EXISTS job_recent_errors;
DROP VIEW IF EXISTS job_stuck;
DROP VIEW IF EXISTS job_oldest_waiting;
DROP VIEW IF EXISTS job_queue_depth;
