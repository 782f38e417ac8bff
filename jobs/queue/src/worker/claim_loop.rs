//! One claim loop: claims into its share of the worker's slots and runs what it claimed. A
//! worker runs several (`claimers`) so that one claim's round trip does not idle the others.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Shared, executor};
use crate::job::{ClaimPosition, ClaimedJob};
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
        // Where the last claim stopped in claim order, and when a claim last started from the
        // beginning (see `Resume`).
        let mut resume = Resume::new(config.poll_interval);

        loop {
            let free = slots.available_permits().min(batch);
            let paused = !waiting_for.borrow_and_update().is_empty();
            if more && free > 0 && (woken || free >= refill_at) && !paused {
                woken = false;
                let (t, pool, queue, worker, lease) =
                    (&config.table, &shared.pool, &config.queue, &config.worker_id, config.lease);
                let after = resume.position();
                let claimed = match &after {
                    Some(after) => store::claim_after(t, pool, queue, &kinds, free, worker, lease, after).await,
                    None => store::claim(t, pool, queue, &kinds, free, worker, lease).await,
                };
                match claimed {
                    Ok(jobs) => {
                        let resumed = after.is_some();
                        resume.claimed(resumed, &jobs, free);
                        // A resumed claim that came back short reached the end of claim order;
                        // what is left may sort before its position: ask again from the start.
                        more = jobs.len() == free || resumed;
                        woken = resumed && jobs.len() < free;
                        if !jobs.is_empty() {
                            metrics::counter!("jobs_claimed_total", "queue" => config.queue.clone())
                                .increment(jobs.len() as u64);
                        } else if !resumed
                            && until == Until::Drained
                            && running.is_empty()
                            && drained(&shared, &kinds).await
                        {
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
                        shared.breaker.open_if_database_unreachable(&e);
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

/// Where the next claim starts. A claim that scans `job_claimable_idx` from its start walks over
/// the entry of every job claimed since the table was last vacuumed (the entries stay until
/// then), so a burn-down of N jobs slowed as it went: 1,650 index pages read for one claim of
/// 125 half way through 500k jobs. A claim that resumes after the last job it took reads a few.
/// Jobs that sort before the position are found by a claim from the start, which runs when the
/// loop has none, after a resumed claim comes back short, and at least once per poll interval.
struct Resume {
    position: Option<ClaimPosition>,
    last_full: Instant,
    every: Duration,
}

impl Resume {
    fn new(every: Duration) -> Self {
        Self { position: None, last_full: Instant::now(), every }
    }

    /// The position to claim after, or `None` for a claim from the start.
    fn position(&self) -> Option<ClaimPosition> {
        self.position.filter(|_| self.last_full.elapsed() < self.every)
    }

    /// Record a claim's result (`resumed`: it was a claim after a position).
    fn claimed(&mut self, resumed: bool, jobs: &[ClaimedJob], asked: usize) {
        if !resumed {
            self.last_full = Instant::now();
        }
        self.position = if jobs.len() < asked { None } else { ClaimPosition::last_of(jobs) };
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
