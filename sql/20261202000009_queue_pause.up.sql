-- Paused queues (the queue's own schema, linked from jobs/queue/migrations). A queue is paused
-- while it has a row here: no worker claims from it, whatever process or machine it runs on,
-- because the claim statement itself checks this table (one primary-key lookup per claim, not
-- per row). Jobs keep being enqueued; running jobs finish. Resuming deletes the row and notifies
-- the queue's channel, so idle workers claim at once.
CREATE TABLE job_paused_queue (
    queue      text        PRIMARY KEY,
    paused_at  timestamptz NOT NULL DEFAULT now(),
    -- Who paused it, for people reading this table: an API key's prefix and name, or a role.
    paused_by  text        NOT NULL,
    CONSTRAINT job_paused_queue_name_length CHECK (char_length(queue) BETWEEN 1 AND 100)
);

COMMENT ON TABLE job_paused_queue IS 'Queues no worker claims from; see runbooks/jobs-by-hand.md.';
