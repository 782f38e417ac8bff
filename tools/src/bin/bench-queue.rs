//! Queue benchmark: bulk enqueue, burn-down of pre-enqueued no-op jobs, and enqueue→start
//! latency at a steady rate with idle workers. Prints figures; asserts nothing.
//!
//! Run through `scripts/bench-queue`, which makes a scratch database. Settings (env):
//! BENCH_SIZES (20000,100000,500000: one enqueue and burn-down each, in turn), BENCH_BATCH (10000
//! rows per enqueue statement), BENCH_CONCURRENCY (1000), BENCH_CLAIM_BATCH (125), BENCH_CLAIMERS
//! (4 claim loops), BENCH_WORKERS (1 worker), BENCH_RATE (50 jobs/s), BENCH_LATENCY_JOBS (1000).

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
use tools::config::{database_url, first_set, var_or};

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

/// Enqueue `total` no-op jobs, `batch` rows a statement; the seconds it took.
async fn bulk_enqueue(pool: &PgPool, table: &JobTable, total: usize, batch: usize) -> anyhow::Result<f64> {
    let jobs: Vec<NewJob> = (0..batch).map(|_| NewJob::from_args(&Noop { t0: 0 }).expect("json")).collect();
    let started = Instant::now();
    let mut inserted = 0;
    while inserted < total {
        let n = batch.min(total - inserted);
        inserted += store::enqueue_many(table, pool, &jobs[..n]).await?.len();
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Start the workers and wait until all `total` queued jobs are completed: the seconds it took
/// (worker start included) and when each tenth of the jobs had started.
async fn burn_down(
    pool: &PgPool,
    total: usize,
    workers: usize,
    config: &WorkerConfig,
) -> anyhow::Result<(f64, Vec<f64>)> {
    let handler = NoopHandler::default();
    let started = Instant::now();
    let (shutdown, handles) = start_workers(pool, &handler, workers, config);
    // When each tenth of the jobs had started: a burn-down that slows as it goes shows here.
    let mut tenths = Vec::with_capacity(10);
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let n = handler.started.load(Ordering::Relaxed) as usize;
        while tenths.len() < 10 && n >= total * (tenths.len() + 1) / 10 {
            tenths.push(started.elapsed().as_secs_f64());
        }
        if n >= total {
            // Through the two partial indexes: a count over the whole table would read every
            // finished row, and at 500k jobs that took longer than the burn-down's last second.
            let left: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM job WHERE state = 'available')
                     OR EXISTS (SELECT 1 FROM job WHERE locked_until IS NOT NULL)",
            )
            .fetch_one(pool)
            .await?;
            if !left {
                break;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    stop(shutdown, handles).await;
    Ok((secs, tenths))
}

/// Flush what the last phase wrote, so that the checkpoint it would trigger does not land in
/// the next one. CHECKPOINT needs superuser or pg_checkpoint; without either the run goes on.
async fn checkpoint(pool: &PgPool) {
    if let Err(e) = sqlx::query("CHECKPOINT").execute(pool).await {
        println!("(no CHECKPOINT between phases: {e})");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = database_url()?;
    let sizes: Vec<usize> = first_set(&["BENCH_SIZES"])
        .unwrap_or_else(|| "20000,100000,500000".into())
        .split(',')
        .map(|n| n.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("BENCH_SIZES must be a list of job counts like 20000,500000: {e}"))?;
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
    let autovacuum: String = sqlx::query_scalar("SHOW autovacuum").fetch_one(&pool).await?;
    let server: String = sqlx::query_scalar("SHOW server_version").fetch_one(&pool).await?;
    println!(
        "bench-queue: sizes {sizes:?}, enqueue batch {batch}, {workers} worker(s) × concurrency {concurrency}, {claimers} claim loops, claim batch {claim_batch}"
    );
    println!("server: PostgreSQL {server}, autovacuum {autovacuum}");
    println!("load average before: {}", loadavg());

    // 1 and 2, for each size: bulk enqueue, then burn-down of everything just enqueued.
    let config = WorkerConfig {
        concurrency,
        claim_batch,
        claimers,
        completion_batch: 5000,
        poll_interval: Duration::from_millis(200),
        ..WorkerConfig::default()
    };
    let mut rates = Vec::new();
    for &total in &sizes {
        sqlx::query("TRUNCATE job").execute(&pool).await?;
        checkpoint(&pool).await;
        let secs = bulk_enqueue(&pool, &table, total, batch).await?;
        println!("bulk enqueue:  {total} jobs in {secs:.2} s = {:.0} jobs/s", total as f64 / secs);
        sqlx::query("VACUUM ANALYZE job").execute(&pool).await?;
        let (secs, tenths) = burn_down(&pool, total, workers, &config).await?;
        let rate = total as f64 / secs;
        rates.push((total, rate));
        println!("burn-down:     {total} jobs completed in {secs:.2} s = {rate:.0} jobs/s (load {})", loadavg());
        let per_tenth: Vec<String> = std::iter::once(0.0)
            .chain(tenths.iter().copied())
            .collect::<Vec<_>>()
            .windows(2)
            .map(|w| format!("{:.0}", (total / 10) as f64 / (w[1] - w[0])))
            .collect();
        println!("  started per second, by tenth of the jobs: {}", per_tenth.join(" "));
    }
    if let Some(&(first, base)) = rates.first() {
        let ratios: Vec<String> = rates.iter().skip(1).map(|(n, r)| format!("{n}: {:.2}", r / base)).collect();
        if !ratios.is_empty() {
            println!("burn-down rate against {first} jobs (autovacuum {autovacuum}): {}", ratios.join(", "));
        }
    }
    sqlx::query("TRUNCATE job").execute(&pool).await?;
    checkpoint(&pool).await;

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
