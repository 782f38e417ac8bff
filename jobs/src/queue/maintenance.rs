//! Queue upkeep that must run in one worker at a time: rescuing expired leases and pruning old
//! finished jobs. Each round takes a transaction-scoped advisory lock, so any number of worker
//! processes can call it and at most one does the work; nothing is left held if a worker dies.

use std::time::Duration;

use sqlx::PgPool;

use super::handler::Registry;
use super::state::{self, Next, Outcome};
use super::store::{self, Error};

/// The advisory lock key of the maintenance round (an arbitrary constant, 'jobsmain' in ASCII).
const MAINTENANCE_LOCK: i64 = 0x6a6f_6273_6d61_696e;
const RESCUE_BATCH: i64 = 1000;
const PRUNE_BATCH: i64 = 10_000;

/// What one maintenance round did; `ran` is false when another worker held the lock.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceReport {
    pub ran: bool,
    pub rescued: usize,
    pub discarded: usize,
    pub pruned: u64,
}

/// One round: rescue expired leases (retry with backoff, or discard with the kind's hook once
/// attempts are spent), then prune finished jobs older than `retention`.
pub async fn run_maintenance(
    pool: &PgPool,
    registry: &Registry,
    retention: Duration,
) -> Result<MaintenanceReport, Error> {
    let mut tx = pool.begin().await?;
    let locked: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(MAINTENANCE_LOCK).fetch_one(&mut *tx).await?;
    if !locked {
        return Ok(MaintenanceReport::default());
    }
    let mut report = MaintenanceReport { ran: true, ..Default::default() };

    let expired = store::lock_expired(&mut tx, RESCUE_BATCH).await?;
    if !expired.is_empty() {
        let moves: Vec<_> = expired
            .iter()
            .map(|job| {
                let policy = registry.get(&job.kind).map(|r| r.options.retry).unwrap_or_default();
                let next = state::next(Outcome::LeaseExpired, job.attempt, job.max_attempts, &policy, rand::random());
                (job.id, next)
            })
            .collect();
        let error = "lease expired: the worker running this attempt stopped renewing it (crashed or cut off)";
        let moved = store::fail_expired(&mut tx, &moves, error).await?;
        for (job, (_, next)) in expired.iter().zip(&moves) {
            if !moved.contains(&job.id) {
                continue;
            }
            report.rescued += 1;
            if *next == Next::Discard {
                report.discarded += 1;
                if let Some(registered) = registry.get(&job.kind) {
                    registered.handler.on_discard(&mut tx, &job.discard_info(error)).await?;
                }
            }
            tracing::warn!(job_id = job.id.0, kind = job.kind, attempt = job.attempt, next = ?next, "rescued job with expired lease");
        }
        metrics::counter!("jobs_rescued_total").increment(report.rescued as u64);
    }

    report.pruned = store::prune(&mut *tx, retention, PRUNE_BATCH).await?;
    tx.commit().await?;
    Ok(report)
}
