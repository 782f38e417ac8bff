//! The core library: the generic Postgres job queue (`queue`) and, built on it, the evidence
//! ingest pipeline. The binaries in `src/bin` are thin mains over this crate.

pub mod queue;

/// Every migration in `sql/`, embedded at compile time; `sqlx migrate run --source sql` applies the same set.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../sql");
