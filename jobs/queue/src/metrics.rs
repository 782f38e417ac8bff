//! The queue's metrics, described once so that `/metrics` carries a `# HELP` line and a unit
//! for each. Every name recorded in this crate is here; the real-binaries test in
//! `api/tests/api/ops.rs` fails on a recorded metric without its `# HELP`.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// The job-duration histogram: its buckets must reach the longest job timeout of the worker
/// (its users set them when they install the recorder).
pub const JOB_DURATION_SECONDS: &str = "job_duration_seconds";

/// Describe the queue's metrics to the installed recorder. Call once, after installing it.
pub fn describe_metrics() {
    describe_histogram!(
        JOB_DURATION_SECONDS,
        Unit::Seconds,
        "Time a handler ran, by kind and outcome (completed, retried, postponed, discarded)."
    );
    describe_counter!(
        "jobs_finished_total",
        Unit::Count,
        "Attempts finished by this worker, by kind and outcome (completed, retried, postponed, discarded)."
    );
    describe_counter!("jobs_claimed_total", Unit::Count, "Jobs claimed by this worker, by queue.");
    describe_counter!(
        "jobs_fenced_out_total",
        Unit::Count,
        "Finishes refused because the job's lease had passed to another attempt (kind \"batch\": batched completions)."
    );
    describe_counter!(
        "jobs_rescued_total",
        Unit::Count,
        "Running jobs whose lease expired, put back or discarded by maintenance."
    );
    describe_counter!(
        "jobs_heartbeat_skipped_total",
        Unit::Count,
        "Lease renewals that found their job no longer held by this worker."
    );
    describe_counter!("jobs_listener_reconnects_total", Unit::Count, "Times the LISTEN connection was re-established.");
    describe_gauge!(
        "jobs_dependency_down",
        Unit::Count,
        "1 while this worker claims nothing because a dependency (database, object_store) is unreachable."
    );
    describe_gauge!(
        "jobs_queue_depth",
        Unit::Count,
        "Jobs available or running, by queue and state; 0 once a state has no rows. Global: aggregate workers with max()."
    );
    describe_gauge!(
        "jobs_oldest_available_age_seconds",
        Unit::Seconds,
        "Age of the oldest available job whose run_at has passed, by queue; 0 when there is none."
    );
    describe_gauge!("jobs_queue_paused", Unit::Count, "1 while the queue is paused (no worker claims from it).");
}
