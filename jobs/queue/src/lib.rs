//! A Postgres-native job queue: transactional enqueue, batched `FOR UPDATE SKIP LOCKED` claims,
//! leases renewed by heartbeat, fenced finishes, capped exponential backoff, rescue of expired
//! leases, LISTEN/NOTIFY wakeups with polling as the safety net.
//!
//! This crate knows nothing about evidence (the ingest pipeline is one user of it) and reads no
//! environment variable: its users pass a [`WorkerConfig`] and a [`JobTable`]. Its schema is
//! the migrations in `migrations/` ([`MIGRATOR`]). See ARCHITECTURE.md for the protocol and its
//! invariants.

mod config;
mod handler;
mod job;
mod maintenance;
pub mod metrics;
pub mod state;
mod status;
pub mod store;
mod table;
#[cfg(feature = "testing")]
pub mod testing;
mod worker;

pub use config::{ConfigError, WorkerConfig};
pub use handler::{
    DATABASE, DEFAULT_MAX_OUTAGES, FinishTx, Handler, JobContext, JobError, KindOptions, Registry, database_unreachable,
};
pub use job::{
    ClaimPosition, ClaimedJob, DiscardInfo, Job, JobArgs, JobId, JobState, JobSummary, NewJob, PausedQueue,
    QueueOverview,
};
pub use maintenance::{MAINTENANCE_LOCK, MaintenanceReport, begin_round, run_maintenance};
pub use state::{Failure, RetryPolicy};
pub use status::WorkerStatus;
pub use store::{Error, JobFilter};
pub use table::{InvalidName, JobTable};
pub use worker::{Drained, Worker};

/// The queue's own migrations (the job table, its indexes and the psql views), embedded at
/// compile time. Services that add tables of their own embed `sql/`, which holds these too.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
