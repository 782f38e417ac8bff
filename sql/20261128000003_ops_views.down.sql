DROP VIEW evidence_status_counts;
DROP VIEW job_recent_errors;
DROP VIEW job_stuck;
DROP VIEW job_oldest_waiting;
DROP VIEW job_queue_depth;
