//! `/v1/jobs` and `/v1/queues`: the job queue for admin keys. A tenant's admin lists, reads,
//! cancels and retries its tenant's jobs; admin keys of the operator tenant
//! (`API_OPERATOR_TENANT`) reach every job and pause and resume queues. The rules are
//! `evidence::operations`'; this is HTTP only.

use chrono::{DateTime, Utc};
use evidence::operations::{Job, JobFilter, JobId, JobState, QueueOverview};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi, Tags};

use crate::auth::ApiKey;
use crate::error::ApiError;
use crate::{AppState, RequestId};

#[derive(Tags)]
enum Tag {
    /// The job queue: jobs of the caller's tenant, queues for the operator (admin keys only).
    Jobs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum JobStateView {
    /// Waiting for its `run_at`, or for a worker.
    Available,
    /// Claimed by a worker, whose lease runs until `locked_until`.
    Running,
    Completed,
    /// Failed permanently or spent its attempts; `errors` says why.
    Discarded,
    /// Cancelled by an operator.
    Cancelled,
}

impl From<JobState> for JobStateView {
    fn from(s: JobState) -> Self {
        match s {
            JobState::Available => JobStateView::Available,
            JobState::Running => JobStateView::Running,
            JobState::Completed => JobStateView::Completed,
            JobState::Discarded => JobStateView::Discarded,
            JobState::Cancelled => JobStateView::Cancelled,
        }
    }
}

impl From<JobStateView> for JobState {
    fn from(s: JobStateView) -> Self {
        match s {
            JobStateView::Available => JobState::Available,
            JobStateView::Running => JobState::Running,
            JobStateView::Completed => JobState::Completed,
            JobStateView::Discarded => JobState::Discarded,
            JobStateView::Cancelled => JobState::Cancelled,
        }
    }
}

/// A job as stored (`job` table), with its error history.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct JobView {
    pub id: i64,
    pub queue: String,
    /// What it does, e.g. `ingest_evidence`.
    pub kind: String,
    /// Its arguments; an ingest job's name its evidence and tenant.
    pub payload: serde_json::Value,
    pub state: JobStateView,
    /// Lower runs first.
    pub priority: i16,
    /// Attempts made (the running one included).
    pub attempt: i32,
    pub max_attempts: i32,
    /// Attempts given back because a dependency was unreachable.
    pub outages: i32,
    /// When it may run (next), or last became runnable.
    pub run_at: DateTime<Utc>,
    /// The worker that holds or last held it.
    pub locked_by: Option<String>,
    /// While running: until when its lease holds.
    pub locked_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// One object per failed attempt: `{attempt, at, error}` (and `outage: true` for an outage).
    pub errors: serde_json::Value,
    pub unique_key: Option<String>,
    /// The request that made it (its `x-request-id`).
    pub correlation_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub attempted_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        JobView {
            id: j.id.0,
            queue: j.queue,
            kind: j.kind,
            payload: j.payload,
            state: j.state.into(),
            priority: j.priority,
            attempt: j.attempt,
            max_attempts: j.max_attempts,
            outages: j.outages,
            run_at: j.run_at,
            locked_by: j.locked_by,
            locked_until: j.locked_until,
            last_error: j.last_error,
            errors: j.errors,
            unique_key: j.unique_key,
            correlation_id: j.correlation_id,
            created_at: j.created_at,
            attempted_at: j.attempted_at,
            finished_at: j.finished_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct JobPage {
    pub items: Vec<JobView>,
    /// Pass as `before` for the next page; absent on the last.
    #[oai(skip_serializing_if_is_none)]
    pub next_before: Option<i64>,
}

/// A queue: its active jobs and whether workers claim from it.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct QueueView {
    pub queue: String,
    pub available: i64,
    pub running: i64,
    /// Seconds since the oldest runnable job became runnable (0 when none waits).
    pub oldest_available_age_seconds: f64,
    /// No worker claims from a paused queue; jobs are still enqueued, running ones finish.
    pub paused: bool,
    pub paused_at: Option<DateTime<Utc>>,
    /// The key that paused it.
    pub paused_by: Option<String>,
}

impl From<QueueOverview> for QueueView {
    fn from(q: QueueOverview) -> Self {
        QueueView {
            queue: q.queue,
            available: q.available,
            running: q.running,
            oldest_available_age_seconds: q.oldest_available_age_seconds,
            paused: q.paused_at.is_some(),
            paused_at: q.paused_at,
            paused_by: q.paused_by,
        }
    }
}

#[derive(Debug, Object)]
pub struct QueueList {
    pub items: Vec<QueueView>,
}

pub struct JobsApi;

#[OpenApi(prefix_path = "/v1")]
impl JobsApi {
    /// Jobs, newest first, with filters (admin); follow `next_before` for more. A tenant's admin
    /// sees its tenant's jobs, the operator's every job.
    #[oai(path = "/jobs", method = "get", tag = "Tag::Jobs", operation_id = "list_jobs")]
    #[allow(clippy::too_many_arguments, reason = "each query parameter of the operation is an argument")]
    async fn list(
        &self,
        state: Data<&AppState>,
        key: ApiKey,
        #[oai(validator(min_length = 1, max_length = 100))] queue: Query<Option<String>>,
        #[oai(validator(min_length = 1, max_length = 100))] kind: Query<Option<String>>,
        #[oai(name = "state")] job_state: Query<Option<JobStateView>>,
        /// Only jobs created at least this many seconds ago.
        #[oai(validator(maximum(value = "315360000")))]
        older_than_seconds: Query<Option<u64>>,
        /// `next_before` of the previous page: jobs with a lower id.
        #[oai(validator(minimum(value = "1")))]
        before: Query<Option<i64>>,
        /// 1 to 500; default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<i64>>,
    ) -> Result<Json<JobPage>, ApiError> {
        let caller = key.caller();
        let limit = limit.0.unwrap_or(50);
        let filter = JobFilter {
            queue: queue.0,
            kind: kind.0,
            state: job_state.0.map(Into::into),
            older_than: older_than_seconds.0.map(std::time::Duration::from_secs),
            payload_contains: None,
            before: before.0.map(JobId),
        };
        let mut jobs = state.service.list_jobs(caller, filter, limit + 1).await?;
        let next_before = if jobs.len() as i64 > limit {
            jobs.truncate(limit as usize);
            jobs.last().map(|j| j.id.0)
        } else {
            None
        };
        Ok(Json(JobPage { items: jobs.into_iter().map(Into::into).collect(), next_before }))
    }

    /// One job with its whole error history (admin).
    #[oai(path = "/jobs/:id", method = "get", tag = "Tag::Jobs", operation_id = "get_job")]
    async fn get(&self, state: Data<&AppState>, key: ApiKey, id: Path<i64>) -> Result<Json<JobView>, ApiError> {
        let caller = key.caller();
        Ok(Json(state.service.job(caller, JobId(id.0)).await?.into()))
    }

    /// Cancel an available or running job (admin). A running job's worker stops it and keeps
    /// nothing of its result. An ingest job's evidence ends in `index_error` ("cancelled by an
    /// operator"), from which reindex or a retry of the job starts it again. 409 `wrong_state`
    /// for a finished job.
    #[oai(path = "/jobs/:id/cancel", method = "post", tag = "Tag::Jobs", operation_id = "cancel_job")]
    async fn cancel(
        &self,
        state: Data<&AppState>,
        key: ApiKey,
        request_id: Data<&RequestId>,
        id: Path<i64>,
    ) -> Result<Json<JobView>, ApiError> {
        let caller = key.caller();
        let job = state.service.cancel_job(caller, JobId(id.0), Some(&request_id.0.0)).await?;
        tracing::info!(job_id = job.id.0, kind = job.kind, "job cancelled");
        Ok(Json(job.into()))
    }

    /// Run a discarded or cancelled job again now, with fresh attempts (admin); its error
    /// history stays. An ingest job's evidence goes back to `queued`. 409 `wrong_state` for a
    /// job in another state, `job_active` when another active job has its unique key.
    #[oai(path = "/jobs/:id/retry", method = "post", tag = "Tag::Jobs", operation_id = "retry_job")]
    async fn retry(
        &self,
        state: Data<&AppState>,
        key: ApiKey,
        request_id: Data<&RequestId>,
        id: Path<i64>,
    ) -> Result<Json<JobView>, ApiError> {
        let caller = key.caller();
        let job = state.service.retry_job(caller, JobId(id.0), Some(&request_id.0.0)).await?;
        tracing::info!(job_id = job.id.0, kind = job.kind, "job retried");
        Ok(Json(job.into()))
    }

    /// Every queue with active jobs or a pause (operator admin keys).
    #[oai(path = "/queues", method = "get", tag = "Tag::Jobs", operation_id = "list_queues")]
    async fn queues(&self, state: Data<&AppState>, key: ApiKey) -> Result<Json<QueueList>, ApiError> {
        let caller = key.caller();
        let queues = state.service.queues(caller).await?;
        Ok(Json(QueueList { items: queues.into_iter().map(Into::into).collect() }))
    }

    /// Pause a queue (operator admin keys): no worker on any machine claims from it until it is
    /// resumed. Jobs are still enqueued; running ones finish. It may be paused before it has jobs.
    #[oai(path = "/queues/:queue/pause", method = "post", tag = "Tag::Jobs", operation_id = "pause_queue")]
    async fn pause(
        &self,
        state: Data<&AppState>,
        key: ApiKey,
        queue: Path<String>,
    ) -> Result<Json<QueueView>, ApiError> {
        let caller = key.caller();
        let paused = state.service.pause_queue(caller, &queue.0).await?;
        tracing::info!(queue = paused.queue, "queue paused");
        Ok(Json(paused.into()))
    }

    /// Resume a paused queue (operator admin keys); idle workers are woken at once.
    #[oai(path = "/queues/:queue/resume", method = "post", tag = "Tag::Jobs", operation_id = "resume_queue")]
    async fn resume(
        &self,
        state: Data<&AppState>,
        key: ApiKey,
        queue: Path<String>,
    ) -> Result<Json<QueueView>, ApiError> {
        let caller = key.caller();
        let resumed = state.service.resume_queue(caller, &queue.0).await?;
        tracing::info!(queue = resumed.queue, "queue resumed");
        Ok(Json(resumed.into()))
    }
}
