//! What a job is: typed arguments, the input of an enqueue, the rows of the job table and the
//! job state.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Typed job arguments; `KIND` is stored in `job.kind` and selects the handler.
pub trait JobArgs: Serialize + DeserializeOwned + Send + 'static {
    const KIND: &'static str;
}

/// A job's primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
#[sqlx(transparent)]
pub struct JobId(pub i64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// `available → running → completed | discarded`, and `cancelled` by an operator. Stored as
/// text (`job.state`, checked by `job_state_check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum JobState {
    Available,
    Running,
    Completed,
    Discarded,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] =
        [JobState::Available, JobState::Running, JobState::Completed, JobState::Discarded, JobState::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Discarded => "discarded",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Completed | JobState::Discarded | JobState::Cancelled)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Input for `store::enqueue`. Build with [`NewJob::new`] or [`NewJob::from_args`].
#[derive(Debug, Clone)]
pub struct NewJob {
    pub queue: String,
    pub kind: String,
    pub payload: Value,
    pub priority: i16,
    pub max_attempts: i32,
    /// `None` means "now" by the database clock.
    pub run_at: Option<DateTime<Utc>>,
    /// At most one available or running job per (kind, unique_key).
    pub unique_key: Option<String>,
    pub correlation_id: Option<String>,
}

impl NewJob {
    pub const DEFAULT_QUEUE: &'static str = "default";
    pub const DEFAULT_MAX_ATTEMPTS: i32 = 5;

    pub fn new(kind: impl Into<String>, payload: Value) -> Self {
        Self {
            queue: Self::DEFAULT_QUEUE.to_owned(),
            kind: kind.into(),
            payload,
            priority: 0,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            run_at: None,
            unique_key: None,
            correlation_id: None,
        }
    }

    /// A job for typed arguments; the kind comes from the arguments' type.
    pub fn from_args<A: JobArgs>(args: &A) -> Result<Self, serde_json::Error> {
        Ok(Self::new(A::KIND, serde_json::to_value(args)?))
    }

    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    pub fn max_attempts(mut self, max_attempts: i32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    pub fn run_at(mut self, run_at: DateTime<Utc>) -> Self {
        self.run_at = Some(run_at);
        self
    }

    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    pub fn correlation_id(mut self, id: Option<String>) -> Self {
        self.correlation_id = id;
        self
    }
}

/// What a claim hands the worker: enough to run the job and to fence every later write.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedJob {
    pub id: JobId,
    pub queue: String,
    pub kind: String,
    pub payload: Value,
    pub attempt: i32,
    pub max_attempts: i32,
    /// Attempts given back so far because a dependency was unreachable.
    pub outages: i32,
    pub lease_token: Uuid,
    pub correlation_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// With `run_at` and `id`, where the job stood in claim order ([`ClaimPosition`]).
    pub priority: i16,
    pub run_at: DateTime<Utc>,
}

/// A place in claim order (`priority, run_at, id`, the order of `job_claimable_idx`): a claim
/// can resume after the last job it took instead of walking again, from the start of the index,
/// over the entries of every job claimed since the last vacuum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClaimPosition {
    pub priority: i16,
    pub run_at: DateTime<Utc>,
    pub id: JobId,
}

impl ClaimPosition {
    /// The position of the last of these jobs in claim order (`None` for no jobs).
    pub fn last_of(jobs: &[ClaimedJob]) -> Option<Self> {
        jobs.iter().map(|j| ClaimPosition { priority: j.priority, run_at: j.run_at, id: j.id }).max()
    }
}

impl ClaimedJob {
    /// What the kind's discard hook is told about this job.
    pub fn discard_info(&self, error: &str) -> DiscardInfo {
        DiscardInfo {
            id: self.id,
            kind: self.kind.clone(),
            payload: self.payload.clone(),
            attempt: self.attempt,
            error: error.to_owned(),
            correlation_id: self.correlation_id.clone(),
        }
    }
}

/// A discarded job, handed to the kind's `on_discard` hook inside the transaction that discards it.
#[derive(Debug, Clone)]
pub struct DiscardInfo {
    pub id: JobId,
    pub kind: String,
    pub payload: serde_json::Value,
    pub attempt: i32,
    pub error: String,
    pub correlation_id: Option<String>,
}

/// A whole row, for inspection (operators, tests).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    pub id: JobId,
    pub queue: String,
    pub kind: String,
    pub payload: Value,
    pub state: JobState,
    pub priority: i16,
    pub attempt: i32,
    pub max_attempts: i32,
    /// Attempts given back because a dependency was unreachable (not counted in `attempt`).
    pub outages: i32,
    pub run_at: DateTime<Utc>,
    pub locked_by: Option<String>,
    pub lease_token: Option<Uuid>,
    pub locked_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub errors: Value,
    pub unique_key: Option<String>,
    pub correlation_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub attempted_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// What other code shows about a job it points at (the evidence API shows its ingest job's).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct JobSummary {
    pub id: JobId,
    pub state: JobState,
    pub attempt: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// A queue no worker claims from (`{job}_paused_queue`), since when and by whom.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct PausedQueue {
    pub queue: String,
    pub paused_at: DateTime<Utc>,
    pub paused_by: String,
}

/// One queue with active jobs or a pause: its jobs per active state, the age of the oldest job
/// waiting to run, and its pause if it has one. For metrics and operators.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct QueueOverview {
    pub queue: String,
    pub available: i64,
    pub running: i64,
    /// Seconds since the oldest available job whose `run_at` has passed became runnable; 0 when
    /// none waits.
    pub oldest_available_age_seconds: f64,
    pub paused_at: Option<DateTime<Utc>>,
    pub paused_by: Option<String>,
}
