//! Helpers shared by the integration tests: bounded waiting on database state, pools, workers.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

pub use queue::testing::{poll_for, wait_until};
use queue::{JobTable, Registry, Worker, WorkerConfig, WorkerStatus};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The table the migrations create, which every test uses.
pub static T: LazyLock<JobTable> = LazyLock::new(JobTable::default);

pub async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

/// A pool big enough for several workers (each holds a listener connection); the test's own
/// pool options are tied to a small parent pool, so only its connect options are used.
pub async fn big_pool(_opts: PgPoolOptions, connect: PgConnectOptions) -> PgPool {
    PgPoolOptions::new().max_connections(30).connect_with(connect).await.expect("pool")
}

/// A worker configuration for tests: polling slow enough that only NOTIFY explains a fast
/// start, short leases and intervals so recovery paths run within a test's bounded wait.
pub fn test_config() -> WorkerConfig {
    WorkerConfig {
        concurrency: 8,
        claim_batch: 8,
        claimers: 2,
        poll_interval: Duration::from_millis(500),
        lease: Duration::from_secs(5),
        shutdown_grace: Duration::from_secs(5),
        maintenance_interval: Duration::from_millis(200),
        ..WorkerConfig::default()
    }
}

/// Run a worker until the queue holds nothing of its kinds; returns how many jobs it ran.
pub async fn drain(pool: &PgPool, registry: Registry, config: WorkerConfig) -> u64 {
    let worker = Worker::new(pool.clone(), registry, config).expect("valid worker config");
    tokio::time::timeout(Duration::from_secs(60), worker.drain()).await.expect("the queue drains within 60 s").jobs
}

pub struct RunningWorker {
    pub status: Arc<WorkerStatus>,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<()>,
}

impl RunningWorker {
    pub fn start(pool: &PgPool, registry: Registry, config: WorkerConfig) -> Self {
        let worker = Worker::new(pool.clone(), registry, config).expect("valid worker config");
        let status = worker.status();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(worker.run(shutdown.clone()));
        Self { status, shutdown, handle }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.expect("worker task");
    }

    pub async fn wait_listening(&self) {
        let status = self.status.clone();
        wait_until(Duration::from_secs(10), "listener connected", move || {
            let status = status.clone();
            async move { status.listener_connected() }
        })
        .await;
    }
}
