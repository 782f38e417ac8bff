//! What a job kind plugs into the worker: typed arguments, a handler, and per-kind options.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::job::{DiscardInfo, JobArgs, JobId};
use crate::state::RetryPolicy;
use crate::store;
use crate::table::JobTable;

/// How an attempt failed. The queue acts on the variant, never on the message.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth retrying with backoff (timeouts, a refused request, a failed statement).
    #[error("{0}")]
    Retryable(String),
    /// Retrying cannot help; the job is discarded at once.
    #[error("{0}")]
    Permanent(String),
    /// A dependency could not be reached (`dependency` names it: `database`, `object_store`):
    /// not the job's fault. The attempt is given back (up to the kind's
    /// [`KindOptions::max_outages`]) and the worker stops claiming until the dependency answers
    /// again (its check, [`crate::Worker::depends_on`]).
    #[error("{message}")]
    Unavailable { dependency: String, message: String },
    /// The claim was lost while the job ran (rescued or cancelled): nothing may be written.
    #[error("the job's lease was lost")]
    LeaseLost,
}

impl JobError {
    pub fn retryable(e: impl std::fmt::Display) -> Self {
        JobError::Retryable(e.to_string())
    }

    pub fn permanent(e: impl std::fmt::Display) -> Self {
        JobError::Permanent(e.to_string())
    }

    pub fn unavailable(dependency: &str, e: impl std::fmt::Display) -> Self {
        JobError::Unavailable { dependency: dependency.to_owned(), message: e.to_string() }
    }
}

/// The name under which a worker checks its own database ([`JobError::Unavailable`]).
pub const DATABASE: &str = "database";

/// Whether a database error means the server could not be reached or dropped the session
/// (rather than that it refused or failed the statement): no connection, a pool that waited in
/// vain, a connection exception (SQLSTATE class 08), or the session ended by an operator or a
/// shutdown (57P01 `pg_terminate_backend`, 57P02, 57P03 "starting up").
pub fn database_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or_default();
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
        }
        _ => false,
    }
}

/// An unreachable server is an outage ([`JobError::Unavailable`]); any other database error is
/// worth retrying.
impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        if database_unreachable(&e) {
            JobError::unavailable(DATABASE, format!("database unreachable: {e}"))
        } else {
            JobError::Retryable(format!("database: {e}"))
        }
    }
}

/// By variant: a database error may pass; a broken uniqueness rule or a job in the wrong state
/// will not change by trying again.
impl From<store::Error> for JobError {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::Db(e) => e.into(),
            e @ (store::Error::UniqueConflict | store::Error::NotFound(_) | store::Error::WrongState { .. }) => {
                JobError::Permanent(e.to_string())
            }
        }
    }
}

/// Runs one kind of job. Work happens outside any transaction; a handler with database effects
/// commits them through [`JobContext::begin_finish`], together with the job's completion.
/// A handler that returns `Ok` without doing so is completed in a batch by the worker.
pub trait Handler: Send + Sync + 'static {
    type Args: JobArgs;

    fn run(&self, ctx: JobContext, args: Self::Args) -> impl Future<Output = Result<(), JobError>> + Send;

    /// Runs in the transaction that discards a job of this kind (after the last attempt, on a
    /// permanent error, or when the rescuer gives up on it). An error rolls the discard back;
    /// the job then stays with its worker's lease and is retried by the rescuer.
    fn on_discard(
        &self,
        conn: &mut PgConnection,
        job: &DiscardInfo,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send {
        let _ = (conn, job);
        async { Ok(()) }
    }
}

/// Per-kind settings: retries, backoff, a time limit per attempt, and how many attempts may be
/// given back for outages.
#[derive(Debug, Clone, Copy)]
pub struct KindOptions {
    pub retry: RetryPolicy,
    pub timeout: Duration,
    /// Attempts a job may be given back because a dependency was unreachable
    /// ([`JobError::Unavailable`]); after that, such a failure counts as a retryable one.
    pub max_outages: i32,
}

/// The default outage budget: with the breaker, one outage costs a job about one of these, so
/// this is "a hundred outages", not a time.
pub const DEFAULT_MAX_OUTAGES: i32 = 100;

impl Default for KindOptions {
    fn default() -> Self {
        Self { retry: RetryPolicy::default(), timeout: Duration::from_secs(300), max_outages: DEFAULT_MAX_OUTAGES }
    }
}

/// Handed to a running handler: who it is, and the way to commit its effects.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub id: JobId,
    pub kind: String,
    pub attempt: i32,
    pub max_attempts: i32,
    pub correlation_id: Option<String>,
    pub(crate) lease_token: Uuid,
    pub(crate) pool: PgPool,
    pub(crate) table: JobTable,
    /// `lock_timeout` and `idle_in_transaction_session_timeout` of the finishing transaction.
    pub(crate) finish_bounds: (Duration, Duration),
    pub(crate) finished: Arc<AtomicBool>,
    /// Cancelled when the lease is lost or the worker gives up on the job at shutdown.
    pub cancelled: CancellationToken,
}

impl JobContext {
    /// Begin the finishing transaction: the job is marked completed first, fenced on the claim,
    /// which also locks its row so no rescuer can take it meanwhile. Write the job's effects on
    /// the returned transaction and [`FinishTx::commit`] it; dropping it rolls everything back.
    /// The server bounds it (`WorkerConfig::finish_bounds`): a statement waiting longer than the
    /// lock timeout fails (a retryable error), and a transaction left idle (a stalled worker) is
    /// ended, which frees the row for the rescuer.
    pub async fn begin_finish(&self) -> Result<FinishTx, JobError> {
        let mut tx = self.pool.begin().await?;
        store::bound_transaction(&mut tx, self.finish_bounds.0, self.finish_bounds.1).await?;
        if !store::complete_if_running(&self.table, &mut *tx, self.id, self.lease_token).await? {
            return Err(JobError::LeaseLost);
        }
        Ok(FinishTx { tx, finished: self.finished.clone() })
    }
}

/// The transaction that completes a job together with its effects.
#[derive(Debug)]
pub struct FinishTx {
    tx: Transaction<'static, Postgres>,
    finished: Arc<AtomicBool>,
}

impl FinishTx {
    pub async fn commit(self) -> Result<(), JobError> {
        self.tx.commit().await?;
        self.finished.store(true, Ordering::Release);
        Ok(())
    }
}

impl std::ops::Deref for FinishTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for FinishTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A handler with its argument type erased, so the registry can hold every kind in one map.
pub(crate) trait ErasedHandler: Send + Sync {
    fn run(&self, ctx: JobContext, payload: serde_json::Value) -> BoxFuture<'_, Result<(), JobError>>;
    fn on_discard<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        job: &'a DiscardInfo,
    ) -> BoxFuture<'a, Result<(), sqlx::Error>>;
}

impl<H: Handler> ErasedHandler for H {
    fn run(&self, ctx: JobContext, payload: serde_json::Value) -> BoxFuture<'_, Result<(), JobError>> {
        match serde_json::from_value::<H::Args>(payload) {
            Ok(args) => Box::pin(Handler::run(self, ctx, args)),
            Err(e) => Box::pin(async move {
                Err(JobError::Permanent(format!("payload does not fit kind {}: {e}", H::Args::KIND)))
            }),
        }
    }

    fn on_discard<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        job: &'a DiscardInfo,
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(Handler::on_discard(self, conn, job))
    }
}

#[derive(Clone)]
pub(crate) struct Registered {
    pub handler: Arc<dyn ErasedHandler>,
    pub options: KindOptions,
}

/// The kinds a worker runs, each with its handler and options.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: HashMap<String, Registered>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("kinds", &self.kinds()).finish()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register<H: Handler>(&mut self, handler: H, options: KindOptions) -> &mut Self {
        let registered = Registered { handler: Arc::new(handler), options };
        self.kinds.insert(H::Args::KIND.to_owned(), registered);
        self
    }

    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self.kinds.keys().cloned().collect();
        kinds.sort();
        kinds
    }

    pub(crate) fn get(&self, kind: &str) -> Option<&Registered> {
        self.kinds.get(kind)
    }
}
