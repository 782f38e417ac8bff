//! What both binaries do around their work: connect to Postgres as the application role
//! (applying migrations first, as the owner, when asked) and to the object store (creating the bucket when asked), and wait for the signal to
//! stop.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::config::{DatabaseSettings, S3Settings};
use crate::storage::Storage;
use crate::store;

/// A lazily connecting pool of at least `min_pool` connections (more if the settings say so),
/// migrated first when the settings ask. Lazy, so a process starts (and reports not ready) while
/// Postgres is still coming up. Every connection switches to the application role and refuses to
/// serve if it would escape row-level security (see [`app_pool`]).
pub async fn database(db: &DatabaseSettings, min_pool: u32, acquire_timeout: Duration) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = db.url.parse().context("DATABASE_URL")?;
    if db.migrate {
        migrate_when_reachable(&options).await?;
    }
    check_app_role(&options, db.app_role.as_deref()).await?;
    Ok(app_pool(options, db.app_role.clone(), db.max_connections.max(min_pool), acquire_timeout))
}

/// Apply the migrations as the user of the URL (the owner), on a connection of its own: the
/// application role may not change the schema. A database that cannot be reached (not up yet,
/// restarting, the connection terminated) is waited out with backoff, as the pool waits it out;
/// a migration that fails on its own stops the process with its reason.
async fn migrate_when_reachable(options: &PgConnectOptions) -> anyhow::Result<()> {
    let mut wait = Duration::from_millis(500);
    loop {
        let error =
            match PgConnection::connect_with(options).await {
                Ok(mut conn) => match crate::MIGRATOR.run(&mut conn).await {
                    Ok(()) => {
                        conn.close().await.ok();
                        return Ok(());
                    }
                    Err(
                        sqlx::migrate::MigrateError::Execute(e) | sqlx::migrate::MigrateError::ExecuteMigration(e, _),
                    ) if queue::database_unreachable(&e) => e,
                    Err(e) => return Err(e).context("applying migrations"),
                },
                Err(e) if queue::database_unreachable(&e) => e,
                Err(e) => return Err(e).context("connecting to apply migrations"),
            };
        tracing::warn!(error = %error, retry_in_ms = wait.as_millis() as u64, "database unreachable; migrations wait for it");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

/// A lazy pool whose every connection first switches to `role` (when given) and then checks that
/// row-level security applies to it: a connection as a superuser, a BYPASSRLS role or the owner of
/// the tables fails (and the log says why), rather than serve every tenant's rows.
pub fn app_pool(options: PgConnectOptions, role: Option<String>, max: u32, acquire_timeout: Duration) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(acquire_timeout)
        .after_connect(move |conn, _| {
            let role = role.clone();
            Box::pin(async move {
                let checked = as_app_role(conn, role.as_deref()).await;
                if let Err(e) = &checked {
                    tracing::error!(error = %e, "database connection refused");
                }
                checked
            })
        })
        .connect_lazy_with(options)
}

/// Check once, at start, what every connection of [`app_pool`] will be checked for, so that a
/// misconfigured role stops the process with its reason. A database that cannot be reached yet
/// passes: the pool waits it out, and checks each connection it makes.
pub async fn check_app_role(options: &PgConnectOptions, role: Option<&str>) -> anyhow::Result<()> {
    let Ok(mut conn) = PgConnection::connect_with(options).await else { return Ok(()) };
    let checked = as_app_role(&mut conn, role).await;
    conn.close().await.ok();
    match checked {
        // Cut off during the check (a restart, a terminated session): the pool checks again.
        Err(e) if queue::database_unreachable(&e) => Ok(()),
        checked => checked.context("DATABASE_URL / DATABASE_APP_ROLE"),
    }
}

async fn as_app_role(conn: &mut PgConnection, role: Option<&str>) -> Result<(), sqlx::Error> {
    if let Some(role) = role {
        store::set_role(conn, role).await?;
    }
    let (user, bypasses) = store::bypasses_row_security(conn).await?;
    if bypasses {
        return Err(sqlx::Error::Configuration(
            format!(
                "the database role `{user}` bypasses row-level security (superuser, BYPASSRLS or table owner): \
                 connect as, or set DATABASE_APP_ROLE to, a role like evidence_app"
            )
            .into(),
        ));
    }
    Ok(())
}

/// One connection as the user of DATABASE_URL itself, without the switch to the application
/// role: for operator commands (`api keys …`) that work across tenants, run with the owner's URL
/// like migrations.
pub async fn owner_pool(db: &DatabaseSettings) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&db.url)
        .await
        .context("connecting to DATABASE_URL")
}

/// The object store client. With S3_CREATE_BUCKET set, the bucket is made in the background, and
/// again until it works: a store that is down at start is waited out (as a database that is down
/// is), not a reason to exit. Until then, uploads answer 503 `storage_unavailable` and ingest jobs
/// retry.
pub fn storage(s3: &S3Settings) -> anyhow::Result<Arc<Storage>> {
    let storage = Arc::new(Storage::new(s3)?);
    if s3.create_bucket {
        tokio::spawn(create_bucket_until_it_works(storage.clone()));
    }
    Ok(storage)
}

async fn create_bucket_until_it_works(storage: Arc<Storage>) {
    let mut wait = Duration::from_millis(500);
    loop {
        match storage.ensure_bucket().await {
            Ok(()) => {
                tracing::info!(bucket = storage.bucket_name(), "bucket ready");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot create the bucket yet (S3_CREATE_BUCKET); retrying");
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(30));
    }
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
