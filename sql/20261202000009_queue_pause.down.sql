DROP TABLE job_paused_queue;
