//! The worker process: claims ingest jobs (and the periodic fixity sweep) from Postgres and runs
//! them, seals committed custody entries into their chains; serves /health, /ready and /metrics
//! on WORKER_BIND. Stops gracefully on SIGTERM or Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use evidence::config::{self, DatabaseSettings, IngestSettings, LogSettings, S3Settings};
use evidence::expiry::{self, ExpiryHandler};
use evidence::fixity::{self, FixityHandler};
use evidence::health::{Probe, WorkerFacts};
use evidence::{IngestHandler, SearchLimits, Service, UploadDeleter, startup};
use queue::{Registry, Worker};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let log = LogSettings::from_env()?;
    let (worker_config, bind) = config::worker_from_env()?;
    let database = DatabaseSettings::from_env()?;
    let s3 = S3Settings::from_env()?;
    let mut ingest = IngestSettings::from_env()?;
    let (max_attempts, retry) = config::ingest_retry_from_env()?;
    let longest_job = evidence::ingest_job_timeout(&ingest).max(fixity::JOB_TIMEOUT);
    let metrics = evidence::telemetry::init(
        &log,
        &[
            (queue::metrics::JOB_DURATION_SECONDS, longest_job),
            (evidence::telemetry::EXTRACTION_SECONDS, ingest.extract_timeout),
        ],
    )?;

    // Jobs at once, plus the listener, heartbeat, completer, maintenance and /ready.
    let pool = startup::database(&database, worker_config.concurrency as u32 + 5, Duration::from_secs(10)).await?;
    let storage = startup::storage(&s3)?;
    anyhow::ensure!(
        ingest.extract_bin.is_file(),
        "the extract binary is not at {} (set INGEST_EXTRACT_BIN)",
        ingest.extract_bin.display()
    );
    evidence::extract::programs::check_installation(ingest.ocr_languages.as_deref(), &ingest.program_path)
        .map_err(anyhow::Error::msg)?;
    // What the ingest stages goes in a folder of this worker's own, which the next worker to
    // start deletes if this one is killed (evidence::scratch).
    let scratch = evidence::scratch::Scratch::create(&ingest.tmp_dir)
        .with_context(|| format!("cannot make a scratch folder in INGEST_TMP_DIR {}", ingest.tmp_dir.display()))?;
    ingest.tmp_dir = scratch.path().to_owned();

    let fixity = config::fixity_from_env()?;
    let mut registry = Registry::new();
    let (max_object_bytes, upload_expiry, upload_part_bytes) =
        (ingest.max_object_bytes, ingest.upload_expiry, ingest.upload_part_bytes);
    let (table, queue) = (worker_config.table.clone(), worker_config.queue.clone());
    let shutdown = CancellationToken::new();
    let (uploads, deleting) = UploadDeleter::start(storage.clone(), shutdown.clone());
    let handler = IngestHandler {
        pool: pool.clone(),
        storage: storage.clone(),
        settings: Arc::new(ingest),
        jobs: table.clone(),
        max_attempts,
        uploads,
    };
    evidence::register(&mut registry, handler, retry);
    if let Some(settings) = &fixity {
        let handler = FixityHandler {
            pool: pool.clone(),
            storage: storage.clone(),
            jobs: table.clone(),
            settings: Arc::new(settings.clone()),
        };
        fixity::register_fixity(&mut registry, handler);
    }
    if upload_expiry.is_some() {
        let expiry = ExpiryHandler { pool: pool.clone(), storage: storage.clone(), jobs: table.clone() };
        expiry::register_expiry(&mut registry, expiry);
    }
    let searches = SearchLimits::default();
    let service = Service {
        pool: pool.clone(),
        storage,
        jobs: table.clone(),
        max_object_bytes,
        upload_expiry,
        upload_part_bytes,
        max_attempts,
        searches,
        known_keys: Default::default(),
        operator_tenant: None,
    };
    let worker =
        evidence::with_store_check(Worker::new(pool.clone(), registry, worker_config)?, service.storage.clone());
    let probe = Probe::worker(service, WorkerFacts { status: worker.status(), table: table.clone(), queue });

    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("WORKER_BIND {bind}"))?;
    tracing::info!(bind = %listener.local_addr()?, "worker health endpoints listening");
    let http = tokio::spawn(evidence::health::serve(listener, probe, metrics, shutdown.clone()));
    let gauges = tokio::spawn(evidence::report_status_counts(pool.clone(), Duration::from_secs(15), shutdown.clone()));
    // Every 5 s: a table that grew since its statistics is analyzed within seconds, before
    // pooled connections settle on plans made while it was empty; a check that finds nothing
    // to do is one read of pg_stat_user_tables.
    let statistics = tokio::spawn(evidence::keep_statistics(pool.clone(), Duration::from_secs(5), shutdown.clone()));
    if fixity.is_some() {
        let (pool, table) = (pool.clone(), table.clone());
        schedule_sweep("fixity", shutdown.clone(), move || {
            let (pool, table) = (pool.clone(), table.clone());
            async move { fixity::schedule_fixity(&pool, &table).await }
        });
    }
    if upload_expiry.is_some() {
        let (pool, table) = (pool.clone(), table.clone());
        schedule_sweep("upload expiry", shutdown.clone(), move || {
            let (pool, table) = (pool.clone(), table.clone());
            async move { expiry::schedule_expiry(&pool, &table).await }
        });
    }
    let sealer = tokio::spawn(evidence::run_sealer(pool.clone(), Duration::from_millis(50), shutdown.clone()));
    let run = tokio::spawn(worker.run(shutdown.clone()));
    startup::shutdown_signal().await;
    tracing::info!("shutdown requested");
    shutdown.cancel();
    run.await?;
    // The jobs have ended and dropped their handles: the uploads they handed over are deleted.
    let deleted = deleting.await?;
    tracing::info!(keys = deleted.keys, requests = deleted.requests, left = deleted.left, "upload deleter stopped");
    sealer.await?;
    http.await??;
    gauges.await?;
    statistics.await?;
    drop(scratch);
    Ok(())
}

/// Schedule a periodic sweep once the database answers (it may still be down at start), with
/// backoff from 1 s to a minute.
fn schedule_sweep<F, Fut>(name: &'static str, stop: CancellationToken, schedule: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), queue::Error>> + Send,
{
    tokio::spawn(async move {
        let mut wait = Duration::from_secs(1);
        while let Err(e) = schedule().await {
            tracing::warn!(error = %e, sweep = name, "could not schedule the sweep yet");
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(Duration::from_secs(60));
        }
    });
}
