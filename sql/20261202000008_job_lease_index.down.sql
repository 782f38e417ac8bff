CREATE INDEX job_running_lease_idx ON job (locked_until) WHERE state = 'running';
DROP INDEX job_lease_idx;
ALTER TABLE job DROP CONSTRAINT job_lease_only_while_running;
