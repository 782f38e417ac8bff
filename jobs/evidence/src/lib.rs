//! The evidence domain: uploads (presign → complete), the ingest job (stream, hash, dedup,
//! extract, index), storage, search, and what the `worker` and `extract` binaries (in `src/bin`,
//! thin mains) need around them: configuration, start-up, telemetry, health endpoints.
//!
//! Built on the `queue` crate, which knows nothing of evidence. The API calls [`Service`], on
//! behalf of a [`Caller`] (an API key's tenant, role and cases).

pub mod access;
pub mod config;
pub mod custody;
mod error;
pub mod expiry;
pub mod extract;
pub mod fixity;
pub mod health;
mod ingest;
pub mod keys;
mod model;
pub mod operations;
pub mod owner;
pub mod query;
#[cfg(any(test, feature = "testing"))]
pub mod samples;
pub mod scratch;
mod service;
pub mod startup;
pub mod storage;
mod store;
mod sweep;
pub mod telemetry;

pub use access::{Action, Caller, Role};
pub use error::EvidenceError;
pub use ingest::{
    IngestEvidence, IngestHandler, UploadDeleter, UploadsDeleted, ingest_job_timeout, register, with_store_check,
};
pub use model::*;
pub use service::{
    Created, DownloadUrl, SearchLimits, Service, UploadPlan, keep_statistics, report_status_counts, run_sealer,
};
pub use store::IngestObject;

/// Every migration in `sql/` (the queue's and the evidence schema), embedded at compile time;
/// `sqlx migrate run --source sql` applies the same set.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../sql");
