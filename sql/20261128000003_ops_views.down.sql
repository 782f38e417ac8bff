-- The job views are owned by 20261201000001_job_views now (it drops them first on a full revert).
DROP VIEW evidence_status_counts;
DROP VIEW IF EXISTS job_recent_errors;
DROP VIEW IF EXISTS job_stuck;
DROP VIEW IF EXISTS job_oldest_waiting;
DROP VIEW IF EXISTS job_queue_depth;
