//! The API process: serves the HTTP API on API_BIND until SIGTERM or Ctrl-C; `api keys …`
//! manages API keys and `api custody verify` checks a custody chain, from the command line
//! (see `api::cli`).

use anyhow::Context;
use api::AppState;
use evidence::config::{self, ApiSettings, DatabaseSettings, IngestSettings, LogSettings, S3Settings};
use evidence::{SearchLimits, Service, startup};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        None => {}
        Some((command, rest)) if command == "keys" => {
            // An operator's command: the message alone, not a backtrace.
            if let Err(e) = api::cli::keys(rest).await {
                eprintln!("error: {e:#}");
                std::process::exit(2);
            }
            return Ok(());
        }
        Some((command, rest)) if command == "custody" => match api::cli::custody(rest).await {
            Ok(true) => return Ok(()),
            Ok(false) => std::process::exit(1),
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::exit(2);
            }
        },
        Some(_) => {
            eprintln!("{}", api::cli::USAGE);
            std::process::exit(2);
        }
    }
    let metrics = evidence::telemetry::init(&LogSettings::from_env()?, &[])?;
    api::describe_metrics();
    let api = ApiSettings::from_env()?;
    let database = DatabaseSettings::from_env()?;
    let s3 = S3Settings::from_env()?;
    let ingest = IngestSettings::from_env()?;
    let (max_attempts, _) = config::ingest_retry_from_env()?;
    let pool = startup::database(&database, 1, std::time::Duration::from_secs(5)).await?;
    let storage = startup::storage(&s3)?;
    let service = Service {
        pool,
        storage,
        jobs: Default::default(),
        max_object_bytes: ingest.max_object_bytes,
        upload_expiry: ingest.upload_expiry,
        upload_part_bytes: ingest.upload_part_bytes,
        max_attempts,
        searches: SearchLimits::new(api.search_concurrency, api.search_timeout, api.search_max_hits),
        known_keys: Default::default(),
        operator_tenant: api.operator_tenant,
    };
    let shutdown = CancellationToken::new();
    let ops_server = match api.ops_bind {
        Some(bind) => {
            let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("API_OPS_BIND {bind}"))?;
            tracing::info!(bind = %listener.local_addr()?, "api operations endpoints listening");
            let probe = evidence::health::Probe::api(service.clone());
            Some(tokio::spawn(evidence::health::serve(listener, probe, metrics.clone(), shutdown.clone())))
        }
        None => None,
    };
    let state =
        AppState::new(service, Some(metrics)).with_cors(api.cors_origins).with_ops_elsewhere(ops_server.is_some());
    let listener = tokio::net::TcpListener::bind(api.bind).await.with_context(|| format!("API_BIND {}", api.bind))?;
    let bind = listener.local_addr()?;
    let public_url = api.public_url.unwrap_or_else(|| format!("http://{bind}"));
    tracing::info!(%bind, docs = format!("{public_url}/docs"), "api listening");
    let server = tokio::spawn(api::serve(listener, state, public_url, shutdown.clone()));
    startup::shutdown_signal().await;
    tracing::info!("shutdown requested");
    shutdown.cancel();
    server.await??;
    if let Some(ops) = ops_server {
        ops.await??;
    }
    Ok(())
}
