//! The worker runtime: claims jobs in batches sized to free slots, runs each under a lease kept
//! alive by one batched heartbeat, finishes it through fenced writes, and completes effect-free
//! successes in batches. Shuts down gracefully: stop claiming, let in-flight jobs finish within
//! the grace period, hand back the rest.
//!
//! - `claim_loop`: claims into a share of the slots and spawns what it claimed;
//! - `executor`: runs one job (time limit, panics, lease loss) and records a failure;
//! - `completer`: batched completion of effect-free successes;
//! - `heartbeat`: renews every in-flight lease and cancels the jobs that lost theirs;
//! - `breaker`: stops the claims while a dependency is unreachable, until its check passes.
//! - `listener`: the LISTEN connection: wakes the claim loops, cancels a job on its notice.

mod breaker;
mod claim_loop;
mod completer;
mod executor;
mod heartbeat;
mod listener;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, WorkerConfig};
use crate::handler::{DATABASE, Registry};
use crate::job::JobId;
use crate::maintenance;
use crate::status::WorkerStatus;
use breaker::Breaker;
pub use breaker::Check;
use claim_loop::{ClaimLoop, Until};
pub(crate) use heartbeat::InFlightMap;

pub struct Worker {
    pool: PgPool,
    registry: Arc<Registry>,
    config: WorkerConfig,
    status: Arc<WorkerStatus>,
    checks: HashMap<String, Check>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dependencies: Vec<_> = self.checks.keys().collect();
        f.debug_struct("Worker").field("config", &self.config).field("dependencies", &dependencies).finish()
    }
}

/// What [`Worker::drain`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Jobs this worker ran to an outcome (completed, retried, discarded or fenced out).
    pub jobs: u64,
}

/// What every job task shares.
pub(crate) struct Shared {
    pool: PgPool,
    registry: Arc<Registry>,
    config: WorkerConfig,
    status: Arc<WorkerStatus>,
    inflight: InFlightMap,
    completions: mpsc::Sender<(JobId, uuid::Uuid)>,
    /// Cancelled when the grace period is over: unfinished jobs are handed back.
    abandon: CancellationToken,
    /// Jobs run to an outcome.
    finished: AtomicU64,
    breaker: Arc<Breaker>,
}

impl Worker {
    /// A worker for `registry`'s kinds; refuses a configuration it cannot run with.
    pub fn new(pool: PgPool, registry: Registry, config: WorkerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut checks = HashMap::new();
        let database = pool.clone();
        let check: Check = Arc::new(move || {
            let pool = database.clone();
            Box::pin(async move { crate::store::ping(&pool).await.map_err(|e| e.to_string()) })
        });
        checks.insert(DATABASE.to_owned(), check);
        Ok(Self { pool, registry: Arc::new(registry), config, status: Arc::default(), checks })
    }

    /// How to tell that `dependency` answers again, for jobs that fail with
    /// [`JobError::Unavailable`](crate::JobError::Unavailable) naming it. The worker knows its
    /// database (`database`) already.
    pub fn depends_on<F, Fut>(mut self, dependency: &str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let check: Check = Arc::new(move || Box::pin(check()));
        self.checks.insert(dependency.to_owned(), check);
        self
    }

    pub fn status(&self) -> Arc<WorkerStatus> {
        self.status.clone()
    }

    /// Run until `shutdown` is cancelled, then drain within the grace period and return.
    pub async fn run(self, shutdown: CancellationToken) {
        self.run_until(Until::Shutdown, shutdown).await;
    }

    /// Run until no job of this worker's kinds is available or running in its queue (retries
    /// that come due meanwhile are run too), then stop as at shutdown. For tests and one-off
    /// batch runs: they wait on the queue's state, not on a clock.
    pub async fn drain(self) -> Drained {
        Drained { jobs: self.run_until(Until::Drained, CancellationToken::new()).await }
    }

    async fn run_until(self, until: Until, shutdown: CancellationToken) -> u64 {
        let Worker { pool, registry, config, status, checks } = self;
        let kinds = registry.kinds();
        // A counter every claim loop watches: each notification (or reconnect) bumps it, and
        // a burst of bumps is seen as one change, so wakeups coalesce.
        let (wake, _) = watch::channel(0u64);
        let background = CancellationToken::new();
        let mut tasks = JoinSet::new();

        let inflight = InFlightMap::default();
        tasks.spawn(listener::run(
            pool.clone(),
            config.table.clone(),
            config.queue.clone(),
            listener::Notices { wake: wake.clone(), inflight: inflight.clone() },
            status.clone(),
            background.clone(),
        ));

        let (completions, completion_rx) = mpsc::channel(config.completion_batch * 4);
        let completer = tokio::spawn(completer::complete_in_batches(
            pool.clone(),
            config.table.clone(),
            completion_rx,
            config.completion_batch,
            status.clone(),
        ));

        tasks.spawn(heartbeat::run(pool.clone(), config.clone(), inflight.clone(), background.clone()));
        tasks.spawn(maintenance::maintain(pool.clone(), registry.clone(), config.clone(), background.clone()));

        let shared = Arc::new(Shared {
            pool: pool.clone(),
            registry,
            config: config.clone(),
            status: status.clone(),
            inflight,
            completions,
            abandon: CancellationToken::new(),
            finished: AtomicU64::new(0),
            breaker: Arc::new(Breaker::new(checks, status.clone(), background.clone())),
        });

        let claimers = config.claimers.min(config.concurrency);
        tracing::info!(
            queue = config.queue,
            worker_id = config.worker_id,
            ?kinds,
            concurrency = config.concurrency,
            claimers,
            ?until,
            "worker started"
        );
        let mut loops = JoinSet::new();
        for i in 0..claimers {
            // The slots are shared out; the first loops take the remainder.
            let slots = config.concurrency / claimers + usize::from(i < config.concurrency % claimers);
            let claimer = ClaimLoop { shared: shared.clone(), kinds: kinds.clone(), slots, until };
            loops.spawn(claimer.run(wake.subscribe(), shutdown.clone()));
        }
        while loops.join_next().await.is_some() {}
        let finished = shared.finished.load(Ordering::Relaxed);
        drop(shared);
        // The completer drains what is buffered once every sender is gone.
        let _ = completer.await;
        background.cancel();
        while tasks.join_next().await.is_some() {}
        tracing::info!(jobs = finished, "worker stopped");
        finished
    }
}
