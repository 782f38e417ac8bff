//! The worker runtime: claims jobs in batches sized to free slots, runs each under a lease kept
//! alive by one batched heartbeat, finishes it through fenced writes, and completes effect-free
//! successes in batches. Shuts down gracefully: stop claiming, let in-flight jobs finish within
//! the grace period, hand back the rest.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use sqlx::PgPool;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::handler::{JobContext, JobError, Registered, Registry};
use super::maintenance::run_maintenance;
use super::model::{ClaimedJob, JobId};
use super::state::{self, Next, Outcome};
use super::{listener, store};

/// Settings of one worker; the binary fills it from `WORKER_*` environment variables.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub queue: String,
    /// Jobs run at once, at most.
    pub concurrency: usize,
    /// Jobs taken per claim statement, at most.
    pub claim_batch: usize,
    /// Claim loops running side by side, sharing out `concurrency`. More than one keeps
    /// Postgres busy while a claim is in flight; it pays at high throughput (see ARCHITECTURE.md).
    pub claimers: usize,
    /// The safety net under LISTEN/NOTIFY.
    pub poll_interval: Duration,
    /// How long a claim holds without a heartbeat; heartbeats run every lease/3.
    pub lease: Duration,
    /// At shutdown, how long in-flight jobs may take before they are handed back.
    pub shutdown_grace: Duration,
    /// Rescue and prune cadence (one worker at a time does it).
    pub maintenance_interval: Duration,
    /// Finished jobs older than this are deleted.
    pub retention: Duration,
    /// Effect-free completions per statement, at most.
    pub completion_batch: usize,
    /// Stored in `job.locked_by`, for people reading the table.
    pub worker_id: String,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            queue: "default".into(),
            concurrency: 16,
            claim_batch: 100,
            claimers: 1,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            maintenance_interval: Duration::from_secs(5),
            retention: Duration::from_secs(7 * 24 * 3600),
            completion_batch: 1000,
            worker_id: default_worker_id(),
        }
    }
}

fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
    format!("{host}:{}:{}", std::process::id(), &Uuid::new_v4().simple().to_string()[..8])
}

/// Live facts about a worker, shared with its health endpoints and with tests.
#[derive(Debug, Default)]
pub struct WorkerStatus {
    pub listener_connected: AtomicBool,
    pub listener_reconnects: AtomicU64,
    /// Unix milliseconds of the last completed job, 0 before the first.
    pub last_completed_unix_ms: AtomicI64,
}

impl WorkerStatus {
    fn record_completed(&self) {
        self.last_completed_unix_ms.store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }
}

/// A running job as the heartbeat sees it.
struct InFlight {
    token: Uuid,
    cancel: CancellationToken,
}

type InFlightMap = Arc<Mutex<HashMap<JobId, InFlight>>>;

#[derive(Debug)]
pub struct Worker {
    pool: PgPool,
    registry: Arc<Registry>,
    config: WorkerConfig,
    status: Arc<WorkerStatus>,
}

/// What every job task shares.
struct Shared {
    pool: PgPool,
    registry: Arc<Registry>,
    status: Arc<WorkerStatus>,
    inflight: InFlightMap,
    completions: mpsc::Sender<(JobId, Uuid)>,
    /// Cancelled when the grace period is over: unfinished jobs are handed back.
    abandon: CancellationToken,
}

impl Worker {
    pub fn new(pool: PgPool, registry: Registry, config: WorkerConfig) -> Self {
        Self { pool, registry: Arc::new(registry), config, status: Arc::default() }
    }

    pub fn status(&self) -> Arc<WorkerStatus> {
        self.status.clone()
    }

    /// Run until `shutdown` is cancelled, then drain within the grace period and return.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), store::Error> {
        let Worker { pool, registry, config, status } = self;
        let kinds = registry.kinds();
        // A counter every claim loop watches: each notification (or reconnect) bumps it, and
        // a burst of bumps is seen as one change, so wakeups coalesce.
        let (wake, _) = watch::channel(0u64);
        let background = CancellationToken::new();
        let mut tasks = JoinSet::new();

        tasks.spawn(listener::run(
            pool.clone(),
            config.queue.clone(),
            wake.clone(),
            status.clone(),
            background.clone(),
        ));

        let (completions, completion_rx) = mpsc::channel(config.completion_batch.max(1) * 4);
        let completer =
            tokio::spawn(complete_in_batches(pool.clone(), completion_rx, config.completion_batch, status.clone()));

        let inflight: InFlightMap = Arc::default();
        tasks.spawn(heartbeat(pool.clone(), inflight.clone(), config.lease, background.clone()));
        tasks.spawn(maintain(pool.clone(), registry.clone(), config.clone(), background.clone()));

        let shared = Arc::new(Shared {
            pool: pool.clone(),
            registry,
            status,
            inflight,
            completions,
            abandon: CancellationToken::new(),
        });

        let claimers = config.claimers.clamp(1, config.concurrency.max(1));
        tracing::info!(
            queue = config.queue,
            worker_id = config.worker_id,
            ?kinds,
            concurrency = config.concurrency,
            claimers,
            "worker started"
        );
        let mut loops = JoinSet::new();
        for i in 0..claimers {
            // The slots are shared out; the first loops take the remainder.
            let slots = config.concurrency / claimers + usize::from(i < config.concurrency % claimers);
            let claimer = ClaimLoop { shared: shared.clone(), config: config.clone(), kinds: kinds.clone(), slots };
            loops.spawn(claimer.run(wake.subscribe(), shutdown.clone()));
        }
        while loops.join_next().await.is_some() {}
        drop(shared);
        // The completer drains what is buffered once every sender is gone.
        let _ = completer.await;
        background.cancel();
        while tasks.join_next().await.is_some() {}
        tracing::info!("worker stopped");
        Ok(())
    }
}

/// One claim loop: claims into its share of the worker's slots and runs what it claimed. A
/// worker runs several (`claimers`) so that one claim's round trip does not idle the others.
struct ClaimLoop {
    shared: Arc<Shared>,
    config: WorkerConfig,
    kinds: Vec<String>,
    slots: usize,
}

impl ClaimLoop {
    async fn run(self, mut wake: watch::Receiver<u64>, shutdown: CancellationToken) {
        let ClaimLoop { shared, config, kinds, slots } = self;
        let batch = config.claim_batch.min(slots).max(1);
        let slots = Arc::new(Semaphore::new(slots));
        let mut running = JoinSet::new();
        let mut poll = tokio::time::interval(config.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Refill in batches under load; a wakeup may claim even a single free slot.
        let refill_at = (batch / 2).max(1);
        let mut more = true;
        let mut woken = true;

        loop {
            let free = slots.available_permits().min(batch);
            if more && free > 0 && (woken || free >= refill_at) {
                woken = false;
                let claimed =
                    store::claim(&shared.pool, &config.queue, &kinds, free, &config.worker_id, config.lease).await;
                match claimed {
                    Ok(jobs) => {
                        more = jobs.len() == free;
                        if !jobs.is_empty() {
                            metrics::counter!("jobs_claimed_total", "queue" => config.queue.clone())
                                .increment(jobs.len() as u64);
                        }
                        for job in jobs {
                            let permit =
                                slots.clone().try_acquire_owned().expect("claimed no more than the free slots");
                            let shared = shared.clone();
                            running.spawn(async move {
                                run_job(&shared, job).await;
                                drop(permit);
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "claim failed; retrying at the next poll");
                        more = false;
                    }
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Ok(()) = wake.changed() => { more = true; woken = true; }
                _ = poll.tick() => { more = true; woken = true; }
                Some(_) = running.join_next() => {
                    while running.try_join_next().is_some() {}
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

/// Run one claimed job to its end and record the outcome, fenced on its claim.
async fn run_job(shared: &Shared, job: ClaimedJob) {
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
        shared.inflight.lock().expect("inflight lock").insert(job.id, InFlight { token: job.lease_token, cancel: cancel.clone() });
        let ctx = JobContext {
            id: job.id,
            kind: job.kind.clone(),
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            correlation_id: job.correlation_id.clone(),
            lease_token: job.lease_token,
            pool: shared.pool.clone(),
            finished: Arc::new(AtomicBool::new(false)),
            cancelled: cancel.clone(),
        };
        let started = Instant::now();
        let outcome = execute(&registered, ctx.clone(), job.payload.clone(), &cancel, &shared.abandon).await;
        shared.inflight.lock().expect("inflight lock").remove(&job.id);
        let elapsed = started.elapsed().as_secs_f64();

        let error = match outcome {
            Ok(()) => {
                metrics::histogram!("job_duration_seconds", "kind" => job.kind.clone(), "outcome" => "completed").record(elapsed);
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
            Err(Attempt::Failed(outcome, error)) => (outcome, error),
        };
        let (outcome, message) = error;
        let next = state::next(outcome, job.attempt, job.max_attempts, &registered.options.retry, rand::random());
        let label = if next == Next::Discard { "discarded" } else { "retried" };
        metrics::histogram!("job_duration_seconds", "kind" => job.kind.clone(), "outcome" => label).record(elapsed);
        metrics::counter!("jobs_finished_total", "kind" => job.kind.clone(), "outcome" => label).increment(1);
        match record_failure(shared, &registered, &job, next, &message).await {
            Ok(true) => tracing::warn!(error = message, next = ?next, "attempt failed"),
            Ok(false) => tracing::warn!(error = message, "attempt failed after its lease was lost; nothing recorded"),
            Err(e) => tracing::error!(error = message, db_error = %e, "could not record the failure; the lease will expire and the rescuer retry"),
        }
    }
    .instrument(span)
    .await
}

enum Attempt {
    LeaseLost,
    Failed(Outcome, String),
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

/// Retry or discard, fenced on the claim. A discard runs the kind's hook in the same transaction.
async fn record_failure(
    shared: &Shared,
    registered: &Registered,
    job: &ClaimedJob,
    next: Next,
    error: &str,
) -> Result<bool, store::Error> {
    if next != Next::Discard {
        return store::fail_if_running(&shared.pool, job.id, job.lease_token, next, error).await;
    }
    let mut tx = shared.pool.begin().await?;
    if !store::fail_if_running(&mut *tx, job.id, job.lease_token, next, error).await? {
        return Ok(false);
    }
    registered.handler.on_discard(&mut tx, &job.discard_info(error)).await?;
    tx.commit().await?;
    Ok(true)
}

/// Complete effect-free successes in batches: take one, then whatever else is already waiting.
async fn complete_in_batches(
    pool: PgPool,
    mut rx: mpsc::Receiver<(JobId, Uuid)>,
    max: usize,
    status: Arc<WorkerStatus>,
) {
    let mut batch = Vec::with_capacity(max);
    while rx.recv_many(&mut batch, max).await > 0 {
        let (ids, tokens): (Vec<JobId>, Vec<Uuid>) = batch.drain(..).unzip();
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=5 {
            match store::complete_many_if_running(&pool, &ids, &tokens).await {
                Ok(done) => {
                    if !done.is_empty() {
                        status.record_completed();
                    }
                    if done.len() < ids.len() {
                        metrics::counter!("jobs_fenced_out_total", "kind" => "batch")
                            .increment((ids.len() - done.len()) as u64);
                        tracing::warn!(fenced_out = ids.len() - done.len(), "some completions lost their lease first");
                    }
                    break;
                }
                Err(e) if attempt < 5 => {
                    tracing::warn!(error = %e, jobs = ids.len(), "batch completion failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    tracing::error!(error = %e, jobs = ids.len(), "batch completion failed; leases will expire and the jobs run again")
                }
            }
        }
    }
}

/// Renew every in-flight lease in one statement each lease/3; cancel the jobs whose fence failed.
async fn heartbeat(pool: PgPool, inflight: InFlightMap, lease: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(lease / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (ids, tokens): (Vec<JobId>, Vec<Uuid>) =
            inflight.lock().expect("inflight lock").iter().map(|(id, f)| (*id, f.token)).unzip();
        if ids.is_empty() {
            continue;
        }
        match store::heartbeat(&pool, &ids, &tokens, lease).await {
            Ok(renewed) => {
                if renewed.len() < ids.len() {
                    let map = inflight.lock().expect("inflight lock");
                    for (id, token) in ids.iter().zip(&tokens) {
                        match map.get(id) {
                            Some(f) if f.token == *token && !renewed.contains(id) => f.cancel.cancel(),
                            _ => {}
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, jobs = ids.len(), "heartbeat failed"),
        }
    }
}

async fn maintain(pool: PgPool, registry: Arc<Registry>, config: WorkerConfig, stop: CancellationToken) {
    let mut tick = tokio::time::interval(config.maintenance_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match run_maintenance(&pool, &registry, config.retention).await {
            Ok(r) if r.rescued > 0 || r.pruned > 0 => {
                tracing::info!(rescued = r.rescued, discarded = r.discarded, pruned = r.pruned, "maintenance")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "maintenance failed"),
        }
        // Every worker reports the same global figures: aggregate with max(), not sum().
        match store::depth(&pool).await {
            Ok(depths) => {
                for d in depths {
                    let labels = [("queue", d.queue.clone()), ("state", d.state.clone())];
                    metrics::gauge!("jobs_queue_depth", &labels).set(d.count as f64);
                    if d.state == "available" {
                        let age = d.oldest_runnable_age_seconds.unwrap_or(0.0);
                        metrics::gauge!("jobs_oldest_available_age_seconds", "queue" => d.queue).set(age);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "queue depth query failed"),
        }
    }
}
