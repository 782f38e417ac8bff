//! The core library: the generic Postgres job queue (`queue`) and, built on it, the evidence
//! ingest pipeline (`evidence`, `storage`, `extract`). The binaries in `src/bin` are thin mains.

pub mod config;
pub mod evidence;
pub mod extract;
pub mod health;
pub mod queue;
pub mod samples;
pub mod startup;
pub mod storage;
pub mod telemetry;

/// Every migration in `sql/`, embedded at compile time; `sqlx migrate run --source sql` applies the same set.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../sql");
