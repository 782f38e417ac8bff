//! The API process: serves the HTTP API on API_BIND until SIGTERM or Ctrl-C.

use std::sync::Arc;

use anyhow::Context;
use api::AppState;
use jobs::config::{self, DatabaseSettings, IngestSettings, S3Settings};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let metrics = jobs::telemetry::init()?;
    let bind = config::api_bind()?;
    let public_url = std::env::var("API_PUBLIC_URL").unwrap_or_else(|_| format!("http://{bind}"));
    let database = DatabaseSettings::from_env()?;
    let s3 = S3Settings::from_env()?;
    let ingest = IngestSettings::from_env()?;
    let (max_attempts, _) = config::ingest_retry_from_env()?;
    let pool = jobs::startup::database(&database, 1, std::time::Duration::from_secs(5)).await?;
    let storage = jobs::startup::storage(&s3).await?;
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
