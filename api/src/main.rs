//! The API process: serves the HTTP API on API_BIND until SIGTERM or Ctrl-C.

use std::sync::Arc;

use anyhow::Context;
use api::AppState;
use jobs::config::{self, IngestSettings, S3Settings};
use jobs::storage::Storage;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let metrics = jobs::telemetry::init()?;
    let bind = config::api_bind()?;
    let public_url = std::env::var("API_PUBLIC_URL").unwrap_or_else(|_| format!("http://{bind}"));
    let s3 = S3Settings::from_env()?;
    let ingest = IngestSettings::from_env()?;
    let (max_attempts, _) = config::ingest_retry_from_env()?;
    let pool = PgPoolOptions::new()
        .max_connections(config::database_max_connections()?)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect_lazy(&config::database_url()?)
        .context("DATABASE_URL")?;
    if config::migrate_on_start()? {
        jobs::MIGRATOR.run(&pool).await.context("applying migrations")?;
    }
    let storage = Storage::new(&s3)?;
    if s3.create_bucket {
        storage.ensure_bucket().await.context("creating the bucket")?;
    }
    let state = AppState {
        pool,
        storage: Arc::new(storage),
        max_object_bytes: ingest.max_object_bytes,
        max_attempts,
        metrics: Some(metrics),
    };
    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("API_BIND {bind}"))?;
    tracing::info!(%bind, docs = format!("{public_url}/docs"), "api listening");
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(api::serve(listener, state, public_url, shutdown.clone()));
    jobs::telemetry::shutdown_signal().await;
    tracing::info!("shutdown requested");
    shutdown.cancel();
    server.await??;
    Ok(())
}
