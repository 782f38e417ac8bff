//! Runs one claimed job to its end and records the outcome, fenced on its claim: a success
//! without effects goes to the completer, a failure becomes a retry or a discard (with the
//! kind's hook in the same transaction), a lost lease writes nothing.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Shared;
use super::heartbeat::InFlight;
use crate::handler::{JobContext, JobError, Registered};
use crate::job::ClaimedJob;
use crate::state::{self, Failure, Outcome};
use crate::store;

pub(crate) async fn run_job(shared: &Shared, job: ClaimedJob) {
    let span = tracing::info_span!(
        "job",
        queue = job.queue,
        job_id = job.id.0,
        kind = job.kind,
        attempt = job.attempt,
        request_id = job.correlation_id.as_deref().unwrap_or("")
    );
    async {
        let Some(registered) = shared.registry.get(&job.kind).cloned() else {
            // Claims only take registered kinds, so this is a programming error; let the lease expire.
            tracing::error!("no handler for kind");
            return;
        };
        let cancel = CancellationToken::new();
        shared.inflight.insert(job.id, InFlight { token: job.lease_token, cancel: cancel.clone() });
        let ctx = JobContext {
            id: job.id,
            kind: job.kind.clone(),
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            correlation_id: job.correlation_id.clone(),
            lease_token: job.lease_token,
            pool: shared.pool.clone(),
            table: shared.config.table.clone(),
            finish_bounds: shared.config.finish_bounds(),
            finished: Arc::new(AtomicBool::new(false)),
            cancelled: cancel.clone(),
        };
        let started = Instant::now();
        let outcome = execute(&registered, ctx.clone(), job.payload.clone(), &cancel, &shared.abandon).await;
        shared.inflight.remove(job.id);
        shared.finished.fetch_add(1, Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();

        let (outcome, message) = match outcome {
            Ok(()) => {
                metrics::histogram!(crate::metrics::JOB_DURATION_SECONDS, "kind" => job.kind.clone(), "outcome" => "completed").record(elapsed);
                metrics::counter!("jobs_finished_total", "kind" => job.kind.clone(), "outcome" => "completed").increment(1);
                if ctx.finished.load(Ordering::Acquire) {
                    shared.status.record_completed();
                } else if shared.completions.send((job.id, job.lease_token)).await.is_err() {
                    tracing::error!("completer gone; the lease will expire and the job run again");
                }
                return;
            }
            Err(Attempt::LeaseLost) => {
                metrics::counter!("jobs_fenced_out_total", "kind" => job.kind.clone()).increment(1);
                tracing::warn!("lease lost while running; result abandoned");
                return;
            }
            Err(Attempt::Failed(_, error) | Attempt::Unavailable { error, .. }) if ctx.finished.load(Ordering::Acquire) => {
                // Its completion (and effects) committed; what failed came after. Nothing to undo.
                shared.status.record_completed();
                tracing::error!(error, "handler failed after committing its completion; the job stays completed");
                return;
            }
            Err(Attempt::Failed(outcome, error)) => (outcome, error),
            Err(Attempt::Unavailable { dependency, error }) => {
                shared.breaker.open(&dependency, &error);
                let outages = Outcome::Unavailable { outages: job.outages, budget: registered.options.max_outages };
                (outages, error)
            }
        };
        let failure = state::next(outcome, job.attempt, job.max_attempts, &registered.options.retry, rand::random());
        let label = match failure {
            Failure::Discard => "discarded",
            Failure::Retry { .. } => "retried",
            Failure::Postpone { .. } => "postponed",
        };
        metrics::histogram!(crate::metrics::JOB_DURATION_SECONDS, "kind" => job.kind.clone(), "outcome" => label).record(elapsed);
        metrics::counter!("jobs_finished_total", "kind" => job.kind.clone(), "outcome" => label).increment(1);
        // Boxed: the failure path's database futures are ten times the size of the rest of the
        // task, and an unboxed future is part of every job's task, copied at each spawn.
        match Box::pin(record_failure(shared, &registered, &job, failure, &message)).await {
            Ok(true) => tracing::warn!(error = message, next = ?failure, "attempt failed"),
            Ok(false) => tracing::warn!(error = message, "attempt failed after its lease was lost; nothing recorded"),
            Err(e) => {
                tracing::error!(error = message, db_error = %e, "could not record the failure; the lease will expire and the rescuer retry");
                shared.breaker.open_if_database_unreachable(&e);
            }
        }
    }
    .instrument(span)
    .await
}

enum Attempt {
    LeaseLost,
    Failed(Outcome, String),
    /// A dependency was unreachable: the breaker opens, the attempt may be given back.
    Unavailable {
        dependency: String,
        error: String,
    },
}

/// The handler, bounded by its timeout, its lease and the shutdown deadline; a panic is a failure.
async fn execute(
    registered: &Registered,
    ctx: JobContext,
    payload: serde_json::Value,
    cancel: &CancellationToken,
    abandon: &CancellationToken,
) -> Result<(), Attempt> {
    let timeout = registered.options.timeout;
    let run = AssertUnwindSafe(registered.handler.run(ctx, payload)).catch_unwind();
    tokio::select! {
        result = run => match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(JobError::LeaseLost)) => Err(Attempt::LeaseLost),
            Ok(Err(JobError::Retryable(e))) => Err(Attempt::Failed(Outcome::Retryable, e)),
            Ok(Err(JobError::Permanent(e))) => Err(Attempt::Failed(Outcome::Permanent, e)),
            Ok(Err(JobError::Unavailable { dependency, message })) => Err(Attempt::Unavailable { dependency, error: message }),
            Err(panic) => Err(Attempt::Failed(Outcome::Retryable, format!("handler panicked: {}", panic_message(&panic)))),
        },
        _ = tokio::time::sleep(timeout) => Err(Attempt::Failed(Outcome::Retryable, format!("timed out after {:.1} s", timeout.as_secs_f64()))),
        _ = cancel.cancelled() => Err(Attempt::LeaseLost),
        _ = abandon.cancelled() => Err(Attempt::Failed(Outcome::Released, "the worker shut down before the job finished".into())),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

/// Retry or discard, fenced on the claim. A discard runs the kind's hook in the same transaction:
/// if the hook fails, the discard rolls back and the job keeps its lease until the rescuer.
async fn record_failure(
    shared: &Shared,
    registered: &Registered,
    job: &ClaimedJob,
    failure: Failure,
    error: &str,
) -> Result<bool, store::Error> {
    let table = &shared.config.table;
    if failure != Failure::Discard {
        return store::fail_if_running(table, &shared.pool, job.id, job.lease_token, failure, error).await;
    }
    let mut tx = shared.pool.begin().await?;
    if !store::fail_if_running(table, &mut *tx, job.id, job.lease_token, failure, error).await? {
        return Ok(false);
    }
    registered.handler.on_discard(&mut tx, &job.discard_info(error)).await?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use chrono::Utc;
    use sqlx::postgres::PgPoolOptions;
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;
    use uuid::Uuid;

    use super::super::breaker::Breaker;
    use super::super::{InFlightMap, Shared};
    use crate::config::WorkerConfig;
    use crate::handler::Registry;
    use crate::job::{ClaimedJob, JobId};
    use crate::status::WorkerStatus;

    /// Every claimed job is a task whose future holds `run_job`'s state; a burn-down spawns tens of
    /// thousands a second. With the failure path unboxed the future was 15.8 KB in a release build
    /// and 5.1 KB in a debug one (1.6 and 1.3 KB boxed); copying it at each spawn took a third of
    /// the worker's CPU in a burn-down.
    #[tokio::test]
    async fn a_job_task_stays_small() {
        let pool = PgPoolOptions::new().connect_lazy("postgres://nobody@127.0.0.1:1/none").expect("lazy pool");
        let status = Arc::new(WorkerStatus::default());
        let (completions, _rx) = mpsc::channel(1);
        let shared = Shared {
            pool,
            registry: Arc::new(Registry::new()),
            config: WorkerConfig::default(),
            status: status.clone(),
            inflight: InFlightMap::default(),
            completions,
            abandon: CancellationToken::new(),
            finished: AtomicU64::new(0),
            breaker: Arc::new(Breaker::new(HashMap::new(), status, CancellationToken::new())),
        };
        let job = ClaimedJob {
            id: JobId(1),
            queue: "default".into(),
            kind: "k".into(),
            payload: serde_json::Value::Null,
            attempt: 1,
            max_attempts: 1,
            outages: 0,
            lease_token: Uuid::nil(),
            correlation_id: None,
            created_at: Utc::now(),
            priority: 0,
            run_at: Utc::now(),
        };
        let task = super::run_job(&shared, job);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 2048, "a job's task future is {size} bytes; box the large, rare paths");
    }
}
