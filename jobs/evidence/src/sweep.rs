//! Periodic sweeps (fixity, upload expiry): one job of the kind at a time, kept to one by its
//! unique key; each worker asks for one at start, and each run enqueues the next in its
//! finishing transaction.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;

use queue::{JobArgs, JobTable, NewJob};

/// The sweep of kind `A`, to run at `run_at`.
pub(crate) fn job<A: JobArgs>(unique_key: &str, run_at: DateTime<Utc>) -> NewJob {
    NewJob::new(A::KIND, json!({})).unique_key(unique_key).run_at(run_at)
}

/// Make sure a sweep of kind `A` is scheduled (the unique key keeps it to one).
pub(crate) async fn schedule<A: JobArgs>(pool: &PgPool, jobs: &JobTable, unique_key: &str) -> Result<(), queue::Error> {
    queue::store::enqueue(jobs, pool, &job::<A>(unique_key, Utc::now())).await.map(|_| ())
}
