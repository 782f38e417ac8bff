//! Queue upkeep that must run in one worker at a time: rescuing expired leases and pruning old
//! finished jobs. Each round takes a transaction-scoped advisory lock, so any number of worker
//! processes can call it and at most one does the work; nothing is left held if a worker dies,
//! and a worker that stalls inside a round (stopped, cut off) loses it after a bound (the
//! server ends its transaction), so that the others' rounds rescue its jobs.
//! The worker's maintenance loop also publishes the queue-depth gauges.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;

use crate::config::WorkerConfig;
use crate::handler::Registry;
use crate::state::{self, Failure, Outcome};
use crate::store::{self, Error};
use crate::table::JobTable;

/// The advisory lock key of the maintenance round (an arbitrary constant, 'jobsmain' in ASCII).
pub const MAINTENANCE_LOCK: i64 = 0x6a6f_6273_6d61_696e;
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

/// A maintenance round's transaction, holding the round's lock; `None` while another worker
/// is in a round. Bounded as a finish is ([`store::bound_transaction`]): a round that waits
/// `bound` for a row lock fails, and one whose worker stalls inside it for `bound` is ended by
/// the server, which lets go of the lock.
pub async fn begin_round(pool: &PgPool, bound: Duration) -> Result<Option<Transaction<'static, Postgres>>, Error> {
    let mut tx = pool.begin().await?;
    store::bound_transaction(&mut tx, bound, bound).await?;
    Ok(store::try_maintenance_lock(&mut tx, MAINTENANCE_LOCK).await?.then_some(tx))
}

/// One round: rescue expired leases of the registry's kinds (retry with backoff, or discard with
/// the kind's hook once attempts are spent), then prune finished jobs older than `retention`.
/// Everything commits together: a failing discard hook rolls the whole round back. `bound`:
/// see [`begin_round`] (the worker's lease).
pub async fn run_maintenance(
    pool: &PgPool,
    table: &JobTable,
    registry: &Registry,
    retention: Duration,
    bound: Duration,
) -> Result<MaintenanceReport, Error> {
    let Some(mut tx) = begin_round(pool, bound).await? else {
        return Ok(MaintenanceReport::default());
    };
    let mut report = MaintenanceReport { ran: true, ..Default::default() };

    let expired = store::lock_expired(table, &mut tx, &registry.kinds(), RESCUE_BATCH).await?;
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
        let moved = store::fail_expired(table, &mut tx, &moves, error).await?;
        for (job, (_, next)) in expired.iter().zip(&moves) {
            if !moved.contains(&job.id) {
                continue;
            }
            report.rescued += 1;
            if *next == Failure::Discard {
                report.discarded += 1;
                // lock_expired only returns registered kinds.
                if let Some(registered) = registry.get(&job.kind) {
                    registered.handler.on_discard(&mut tx, &job.discard_info(error)).await?;
                }
            }
            tracing::warn!(job_id = job.id.0, kind = job.kind, attempt = job.attempt, next = ?next, "rescued job with expired lease");
        }
        metrics::counter!("jobs_rescued_total").increment(report.rescued as u64);
    }

    report.pruned = store::prune(table, &mut *tx, retention, PRUNE_BATCH).await?;
    tx.commit().await?;
    Ok(report)
}

/// The worker's maintenance loop: a round every `maintenance_interval`, then the gauges.
pub(crate) async fn maintain(pool: PgPool, registry: Arc<Registry>, config: WorkerConfig, stop: CancellationToken) {
    let mut tick = tokio::time::interval(config.maintenance_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut gauges = DepthGauges::default();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match run_maintenance(&pool, &config.table, &registry, config.retention, config.lease).await {
            Ok(r) if r.rescued > 0 || r.pruned > 0 => {
                tracing::info!(rescued = r.rescued, discarded = r.discarded, pruned = r.pruned, "maintenance")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "maintenance failed"),
        }
        gauges.report(&pool, &config).await;
    }
}

/// The queue gauges: `jobs_queue_depth{queue,state}` for the active states,
/// `jobs_oldest_available_age_seconds{queue}` and `jobs_queue_paused{queue}`. Every queue seen
/// once (with jobs, paused, or the worker's own) is reported every round, at 0 when it has no
/// rows any more: a gauge left at its last value would keep an alert firing after its cause is
/// gone. Every worker reports the same global figures: aggregate with max(), not sum().
#[derive(Default)]
struct DepthGauges {
    queues: BTreeSet<String>,
}

impl DepthGauges {
    async fn report(&mut self, pool: &PgPool, config: &WorkerConfig) {
        let found = match store::queues(&config.table, pool).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "queue depth query failed");
                return;
            }
        };
        self.queues.insert(config.queue.clone());
        self.queues.extend(found.iter().map(|q| q.queue.clone()));
        for name in &self.queues {
            let q = found.iter().find(|q| &q.queue == name);
            for (state, count) in [("available", q.map_or(0, |q| q.available)), ("running", q.map_or(0, |q| q.running))]
            {
                let labels = [("queue", name.clone()), ("state", state.to_owned())];
                metrics::gauge!("jobs_queue_depth", &labels).set(count as f64);
            }
            let age = q.map_or(0.0, |q| q.oldest_available_age_seconds);
            metrics::gauge!("jobs_oldest_available_age_seconds", "queue" => name.clone()).set(age);
            let paused = q.is_some_and(|q| q.paused_at.is_some());
            metrics::gauge!("jobs_queue_paused", "queue" => name.clone()).set(if paused { 1.0 } else { 0.0 });
        }
    }
}
