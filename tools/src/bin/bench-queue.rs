//! Queue benchmark: bulk enqueue, burn-down of pre-enqueued no-op jobs, and enqueue→start
//! latency at a steady rate with idle workers. Prints figures; asserts nothing.
//!
//! Run through `scripts/bench-queue`, which makes a scratch database. Settings (env):
//! BENCH_JOBS (100000), BENCH_BATCH (10000 rows per enqueue statement), BENCH_CONCURRENCY (1000),
//! BENCH_CLAIM_BATCH (125), BENCH_CLAIMERS (4 claim loops), BENCH_WORKERS (1 worker), BENCH_RATE (50 jobs/s),
//! BENCH_LATENCY_JOBS (1000).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use queue::{
    Handler, JobArgs, JobContext, JobError, JobTable, KindOptions, NewJob, Registry, Worker, WorkerConfig, store,
};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;
use tools::config::{database_url, var_or};

static EPOCH: OnceLock<Instant> = OnceLock::new();

fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

#[derive(Serialize, Deserialize)]
struct Noop {
    /// When the enqueue call began (ns on this process's clock); 0 for the throughput runs.
    t0: u64,
}
impl JobArgs for Noop {
    const KIND: &'static str = "bench_noop";
}

#[derive(Clone, Default)]
struct NoopHandler {
    started: Arc<AtomicU64>,
    latencies_ns: Arc<Mutex<Vec<u64>>>,
}
impl Handler for NoopHandler {
    type Args = Noop;
    async fn run(&self, _ctx: JobContext, args: Noop) -> Result<(), JobError> {
        if args.t0 > 0 {
            let latency = now_ns() - args.t0;
            self.latencies_ns.lock().expect("latency lock").push(latency);
        }
        self.started.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn start_workers(
    pool: &PgPool,
    handler: &NoopHandler,
    n: usize,
    config: &WorkerConfig,
) -> (CancellationToken, Vec<tokio::task::JoinHandle<()>>) {
    let shutdown = CancellationToken::new();
    let handles = (0..n)
        .map(|_| {
            let mut registry = Registry::new();
            registry.register(handler.clone(), KindOptions::default());
            let worker = Worker::new(pool.clone(), registry, config.clone()).expect("valid worker config");
            tokio::spawn(worker.run(shutdown.clone()))
        })
        .collect();
    (shutdown, handles)
}

async fn stop(shutdown: CancellationToken, handles: Vec<tokio::task::JoinHandle<()>>) {
    shutdown.cancel();
    for h in handles {
        h.await.expect("worker task");
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1e6
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = database_url()?;
    let total: usize = var_or("BENCH_JOBS", 100_000);
    let batch: usize = var_or("BENCH_BATCH", 10_000);
    let concurrency: usize = var_or("BENCH_CONCURRENCY", 1000);
    let claim_batch: usize = var_or("BENCH_CLAIM_BATCH", 125);
    let claimers: usize = var_or("BENCH_CLAIMERS", 4);
    let workers: usize = var_or("BENCH_WORKERS", 1);
    let rate: f64 = var_or("BENCH_RATE", 50.0);
    let latency_jobs: usize = var_or("BENCH_LATENCY_JOBS", 1000);
    now_ns();

    let pool = PgPoolOptions::new().max_connections(20).connect(&url).await?;
    let table = JobTable::default();
    queue::MIGRATOR.run(&pool).await?;
    sqlx::query("TRUNCATE job").execute(&pool).await?;
    println!(
        "bench-queue: {total} jobs, enqueue batch {batch}, {workers} worker(s) × concurrency {concurrency}, {claimers} claim loops, claim batch {claim_batch}"
    );
    println!("load average before: {}", loadavg());

    // 1. Bulk enqueue.
    let jobs: Vec<NewJob> = (0..batch).map(|_| NewJob::from_args(&Noop { t0: 0 }).expect("json")).collect();
    let started = Instant::now();
    let mut inserted = 0;
    while inserted < total {
        let n = batch.min(total - inserted);
        inserted += store::enqueue_many(&table, &pool, &jobs[..n]).await?.len();
    }
    let secs = started.elapsed().as_secs_f64();
    println!("bulk enqueue:  {inserted} jobs in {secs:.2} s = {:.0} jobs/s", inserted as f64 / secs);
    sqlx::query("VACUUM ANALYZE job").execute(&pool).await?;

    // 2. Burn-down of everything just enqueued.
    let handler = NoopHandler::default();
    let config = WorkerConfig {
        concurrency,
        claim_batch,
        claimers,
        completion_batch: 5000,
        poll_interval: Duration::from_millis(200),
        ..WorkerConfig::default()
    };
    let started = Instant::now();
    let (shutdown, handles) = start_workers(&pool, &handler, workers, &config);
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if handler.started.load(Ordering::Relaxed) as usize >= total {
            let left: i64 =
                sqlx::query_scalar("SELECT count(*) FROM job WHERE state <> 'completed'").fetch_one(&pool).await?;
            if left == 0 {
                break;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!("burn-down:     {total} jobs completed in {secs:.2} s = {:.0} jobs/s", total as f64 / secs);
    stop(shutdown, handles).await;
    sqlx::query("TRUNCATE job").execute(&pool).await?;
    // The burn-down wrote a few hundred MB of WAL; flush it now so that the checkpoint it would
    // trigger does not land in the latency phase, which measures a quiet queue. CHECKPOINT needs
    // superuser or pg_checkpoint; without either the phase runs anyway.
    if let Err(e) = sqlx::query("CHECKPOINT").execute(&pool).await {
        println!("(no CHECKPOINT before the latency phase: {e})");
    }

    // 3. Enqueue→start latency at a steady rate, idle workers, one job per enqueue call.
    let handler = NoopHandler::default();
    let config = WorkerConfig { concurrency: 16, claim_batch: 16, ..WorkerConfig::default() };
    let (shutdown, handles) = start_workers(&pool, &handler, 1, &config);
    tokio::time::sleep(Duration::from_millis(500)).await; // let the listener connect
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut enqueue_ns = Vec::with_capacity(latency_jobs);
    for _ in 0..latency_jobs {
        tick.tick().await;
        let t0 = now_ns();
        let job = NewJob::from_args(&Noop { t0 })?;
        store::enqueue(&table, &pool, &job).await?;
        enqueue_ns.push(now_ns() - t0);
    }
    enqueue_ns.sort_unstable();
    while (handler.started.load(Ordering::Relaxed) as usize) < latency_jobs {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop(shutdown, handles).await;
    let mut lat = handler.latencies_ns.lock().expect("latency lock").clone();
    lat.sort_unstable();
    println!(
        "enqueue→start at {rate:.0} jobs/s ({} jobs): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        percentile(&lat, 0.50),
        percentile(&lat, 0.95),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
    println!(
        "  of which the enqueue call itself (INSERT + NOTIFY + commit): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
        percentile(&enqueue_ns, 0.50),
        percentile(&enqueue_ns, 0.95),
        percentile(&enqueue_ns, 0.99)
    );
    println!("load average after: {}", loadavg());
    Ok(())
}
