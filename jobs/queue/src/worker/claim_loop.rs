//! One claim loop: claims into its share of the worker's slots and runs what it claimed. A
//! worker runs several (`claimers`) so that one claim's round trip does not idle the others.

use std::sync::Arc;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Shared, executor};
use crate::handler::{DATABASE, database_unreachable};
use crate::store;

/// When a claim loop stops claiming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    /// When the shutdown token is cancelled.
    Shutdown,
    /// When nothing of its kinds is available or running in the queue any more.
    Drained,
}

pub(crate) struct ClaimLoop {
    pub shared: Arc<Shared>,
    pub kinds: Vec<String>,
    pub slots: usize,
    pub until: Until,
}

impl ClaimLoop {
    pub async fn run(self, mut wake: watch::Receiver<u64>, shutdown: CancellationToken) {
        let ClaimLoop { shared, kinds, slots, until } = self;
        let config = &shared.config;
        let batch = config.claim_batch.min(slots).max(1);
        let slots = Arc::new(Semaphore::new(slots));
        let mut running = JoinSet::new();
        let mut poll = tokio::time::interval(config.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Refill in batches under load; a wakeup may claim even a single free slot.
        let refill_at = (batch / 2).max(1);
        let mut more = true;
        let mut woken = true;
        // Non-empty while a dependency is unreachable: then nothing is claimed.
        let mut waiting_for = shared.breaker.subscribe();

        loop {
            let free = slots.available_permits().min(batch);
            let paused = !waiting_for.borrow_and_update().is_empty();
            if more && free > 0 && (woken || free >= refill_at) && !paused {
                woken = false;
                let claimed = store::claim(
                    &config.table,
                    &shared.pool,
                    &config.queue,
                    &kinds,
                    free,
                    &config.worker_id,
                    config.lease,
                )
                .await;
                match claimed {
                    Ok(jobs) => {
                        more = jobs.len() == free;
                        if !jobs.is_empty() {
                            metrics::counter!("jobs_claimed_total", "queue" => config.queue.clone())
                                .increment(jobs.len() as u64);
                        } else if until == Until::Drained && running.is_empty() && drained(&shared, &kinds).await {
                            break;
                        }
                        for job in jobs {
                            let permit =
                                slots.clone().try_acquire_owned().expect("claimed no more than the free slots");
                            let shared = shared.clone();
                            running.spawn(async move {
                                executor::run_job(&shared, job).await;
                                drop(permit);
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "claim failed; retrying at the next poll");
                        if let store::Error::Db(db) = &e
                            && database_unreachable(db)
                        {
                            shared.breaker.open(DATABASE, &e.to_string());
                        }
                        more = false;
                    }
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Ok(()) = wake.changed() => { more = true; woken = true; }
                Ok(()) = waiting_for.changed() => { more = true; woken = true; }
                _ = poll.tick() => { more = true; woken = true; }
                Some(_) = running.join_next() => {
                    while running.try_join_next().is_some() {}
                    // In drain mode an emptied loop asks again at once rather than at the next poll.
                    if until == Until::Drained && running.is_empty() { more = true; woken = true; }
                }
            }
        }

        tracing::info!(
            in_flight = running.len(),
            grace_ms = config.shutdown_grace.as_millis() as u64,
            "claim loop stopping: no more claims"
        );
        let drained =
            tokio::time::timeout(config.shutdown_grace, async { while running.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(in_flight = running.len(), "grace period over; handing unfinished jobs back");
            shared.abandon.cancel();
            while running.join_next().await.is_some() {}
        }
    }
}

/// Nothing of these kinds is available or running in the queue (a failed check counts as "not
/// yet": the loop asks again at the next poll).
async fn drained(shared: &Shared, kinds: &[String]) -> bool {
    let config = &shared.config;
    match store::active_count(&config.table, &shared.pool, &config.queue, kinds).await {
        Ok(n) => n == 0,
        Err(e) => {
            tracing::warn!(error = %e, "drain check failed; asking again at the next poll");
            false
        }
    }
}
