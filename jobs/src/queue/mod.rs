//! A Postgres-native job queue: transactional enqueue, batched `FOR UPDATE SKIP LOCKED` claims,
//! leases renewed by heartbeat, fenced finishes, capped exponential backoff, rescue of expired
//! leases, LISTEN/NOTIFY wakeups with polling as the safety net.
//!
//! This module knows nothing about evidence; the ingest pipeline is one user of it.
//! See ARCHITECTURE.md for the protocol and its invariants.

mod handler;
mod listener;
mod maintenance;
mod model;
pub mod state;
pub mod store;
mod worker;

pub use handler::{DiscardInfo, FinishTx, Handler, JobArgs, JobContext, JobError, KindOptions, Registry};
pub use maintenance::{MaintenanceReport, run_maintenance};
pub use model::{ClaimedJob, Job, JobId, JobState, NewJob, QueueDepth};
pub use state::RetryPolicy;
pub use store::Error;
pub use worker::{Worker, WorkerConfig, WorkerStatus};

/// The NOTIFY channel; the payload is the queue name. A hint only: polling is the truth.
pub const NOTIFY_CHANNEL: &str = "job_available";
