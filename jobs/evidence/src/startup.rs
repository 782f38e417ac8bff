//! What both binaries do around their work: connect to Postgres (applying migrations when
//! asked) and to the object store (creating the bucket when asked), and wait for the signal to
//! stop.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::config::{DatabaseSettings, S3Settings};
use crate::storage::Storage;

/// A lazily connecting pool of at least `min_pool` connections (more if the settings say so),
/// migrated first when the settings ask. Lazy, so a process starts (and reports not ready) while
/// Postgres is still coming up.
pub async fn database(db: &DatabaseSettings, min_pool: u32, acquire_timeout: Duration) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(db.max_connections.max(min_pool))
        .acquire_timeout(acquire_timeout)
        .connect_lazy(&db.url)
        .context("DATABASE_URL")?;
    if db.migrate {
        crate::MIGRATOR.run(&pool).await.context("applying migrations")?;
    }
    Ok(pool)
}

/// The object store client, with the bucket created first when S3_CREATE_BUCKET is set.
pub async fn storage(s3: &S3Settings) -> anyhow::Result<Storage> {
    let storage = Storage::new(s3)?;
    if s3.create_bucket {
        storage.ensure_bucket().await.context("creating the bucket")?;
    }
    Ok(storage)
}

/// Wait for Ctrl-C or SIGTERM (what `docker stop` and systemd send).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
