-- The generic job queue (jobs::queue). Knows nothing about evidence.
-- States: available -> running -> completed | discarded, and cancelled from available/running.
CREATE TABLE job (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue           text        NOT NULL DEFAULT 'default',
    kind            text        NOT NULL,
    payload         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    state           text        NOT NULL DEFAULT 'available',
    priority        smallint    NOT NULL DEFAULT 0,
    attempt         integer     NOT NULL DEFAULT 0,
    max_attempts    integer     NOT NULL DEFAULT 5,
    run_at          timestamptz NOT NULL DEFAULT now(),
    -- The lease: who holds the job, the claim token every later write is fenced on, and until when.
    locked_by       text,
    lease_token     uuid,
    locked_until    timestamptz,
    last_error      text,
    -- One object per failed attempt: {"attempt": n, "at": ts, "error": "..."}.
    errors          jsonb       NOT NULL DEFAULT '[]'::jsonb,
    -- At most one available/running job per (kind, unique_key): "one active job per thing".
    unique_key      text,
    -- Ties the job to what caused it (the API's request id), for logs and tracing.
    correlation_id  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempted_at    timestamptz,
    finished_at     timestamptz,
    CONSTRAINT job_state_check CHECK (state IN ('available', 'running', 'completed', 'discarded', 'cancelled')),
    CONSTRAINT job_attempts_check CHECK (max_attempts > 0 AND attempt >= 0),
    CONSTRAINT job_running_has_lease CHECK (
        state <> 'running' OR (lease_token IS NOT NULL AND locked_until IS NOT NULL)
    ),
    CONSTRAINT job_finished_has_time CHECK (
        state NOT IN ('completed', 'discarded', 'cancelled') OR finished_at IS NOT NULL
    )
);

-- The hot index: only claimable rows, in claim order. Finished and running rows never enter it.
CREATE INDEX job_claimable_idx ON job (queue, priority, run_at, id) WHERE state = 'available';

-- Expired leases are found through this one (rescuer).
CREATE INDEX job_running_lease_idx ON job (locked_until) WHERE state = 'running';

-- The pruner deletes finished rows by age.
CREATE INDEX job_finished_idx ON job (finished_at) WHERE state IN ('completed', 'discarded', 'cancelled');

CREATE UNIQUE INDEX job_unique_active_key ON job (kind, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('available', 'running');

COMMENT ON TABLE job IS 'Postgres-native job queue; see runbooks/ for safe manual operations.';
