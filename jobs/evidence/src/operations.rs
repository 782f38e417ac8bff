//! Queue operations for admin keys: list jobs, read one with its error history, cancel, retry,
//! and pause or resume a queue. The queue does the work (`queue::store`); this module decides
//! whose jobs a key reaches and names the key as the actor.
//!
//! - A tenant's admin reaches the jobs whose payload names its tenant (the ingest jobs of its
//!   evidence); another tenant's job answers 404, as a job that does not exist.
//! - Pausing, resuming and listing queues concern every tenant at once: only admin keys of the
//!   operator tenant (`API_OPERATOR_TENANT`) may, and those reach every job too.
//! - Job operations need a key for every case of the tenant: a job may concern any case.
//!
//! Cancelling or retrying an ingest job moves its evidence in the same transaction (the
//! `evidence_follows_ingest_job` trigger, whoever acts), and the custody entry it writes names
//! the key and the request ([`store::set_actor`]).

pub use queue::{Job, JobFilter, JobId, JobState, PausedQueue};
use serde_json::json;

use crate::access::{Action, Caller};
use crate::custody::Actor;
use crate::error::EvidenceError;
use crate::service::Service;
use crate::store;

/// Most jobs one listing returns.
pub const MAX_JOB_PAGE: i64 = 500;

/// One queue as operators see it: its active jobs and whether it is paused.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueInfo {
    pub queue: String,
    pub available: i64,
    pub running: i64,
    /// Seconds since the oldest runnable job became runnable (0 when none waits).
    pub oldest_available_age_seconds: f64,
    pub paused: Option<PausedQueue>,
}

impl Service {
    /// Jobs the caller reaches that match `filter`, newest first, at most `limit`.
    pub async fn list_jobs(&self, caller: &Caller, filter: JobFilter, limit: i64) -> Result<Vec<Job>, EvidenceError> {
        self.require_jobs(caller)?;
        let filter = JobFilter { payload_contains: self.job_scope(caller), ..filter };
        let mut tx = self.begin(caller).await?;
        let jobs = queue::store::list(&self.jobs, &mut *tx, &filter, limit.clamp(1, MAX_JOB_PAGE)).await?;
        store::end_read(tx);
        Ok(jobs)
    }

    /// One job with its whole error history.
    pub async fn job(&self, caller: &Caller, id: JobId) -> Result<Job, EvidenceError> {
        self.require_jobs(caller)?;
        let mut tx = self.begin(caller).await?;
        let job = self.reachable_job(&mut tx, caller, id).await?;
        store::end_read(tx);
        Ok(job)
    }

    /// Cancel an available or running job (a running one's worker stops it and abandons its
    /// result). An ingest job's evidence ends in `index_error`, "cancelled by an operator".
    pub async fn cancel_job(&self, caller: &Caller, id: JobId, request_id: Option<&str>) -> Result<Job, EvidenceError> {
        self.act_on_job(caller, id, request_id, JobAction::Cancel).await
    }

    /// Run a discarded or cancelled job again with fresh attempts. An ingest job's evidence goes
    /// back to `queued`.
    pub async fn retry_job(&self, caller: &Caller, id: JobId, request_id: Option<&str>) -> Result<Job, EvidenceError> {
        self.act_on_job(caller, id, request_id, JobAction::Retry).await
    }

    /// Every queue with active jobs or a pause, by name (operator keys).
    pub async fn queues(&self, caller: &Caller) -> Result<Vec<QueueInfo>, EvidenceError> {
        self.require_operator(caller)?;
        let mut tx = self.begin(caller).await?;
        let depth = queue::store::depth(&self.jobs, &mut *tx).await?;
        let paused = queue::store::paused(&self.jobs, &mut *tx).await?;
        store::end_read(tx);
        let mut names: Vec<&str> =
            depth.iter().map(|d| d.queue.as_str()).chain(paused.iter().map(|p| p.queue.as_str())).collect();
        names.sort_unstable();
        names.dedup();
        Ok(names
            .into_iter()
            .map(|name| {
                let of = |state| depth.iter().find(|d| d.queue == name && d.state == state);
                QueueInfo {
                    queue: name.to_owned(),
                    available: of(JobState::Available).map_or(0, |d| d.count),
                    running: of(JobState::Running).map_or(0, |d| d.count),
                    oldest_available_age_seconds: of(JobState::Available)
                        .and_then(|d| d.oldest_runnable_age_seconds)
                        .unwrap_or(0.0),
                    paused: paused.iter().find(|p| p.queue == name).cloned(),
                }
            })
            .collect())
    }

    /// Stop every worker from claiming in `queue` (operator keys). A queue can be paused before
    /// it has jobs; pausing a paused queue keeps the first pause.
    pub async fn pause_queue(&self, caller: &Caller, queue: &str) -> Result<QueueInfo, EvidenceError> {
        self.require_operator(caller)?;
        valid_queue_name(queue)?;
        let by = format!("api key {} ({})", caller.key_prefix, caller.key_name);
        let mut tx = self.begin(caller).await?;
        queue::store::pause(&self.jobs, &mut *tx, queue, &by).await?;
        tx.commit().await?;
        self.queue_info(caller, queue).await
    }

    /// Let workers claim in `queue` again (operator keys); resuming a queue that is not paused
    /// changes nothing.
    pub async fn resume_queue(&self, caller: &Caller, queue: &str) -> Result<QueueInfo, EvidenceError> {
        self.require_operator(caller)?;
        valid_queue_name(queue)?;
        let mut tx = self.begin(caller).await?;
        queue::store::resume(&self.jobs, &mut tx, queue).await?;
        tx.commit().await?;
        self.queue_info(caller, queue).await
    }

    async fn queue_info(&self, caller: &Caller, queue: &str) -> Result<QueueInfo, EvidenceError> {
        let found = self.queues(caller).await?.into_iter().find(|q| q.queue == queue);
        Ok(found.unwrap_or(QueueInfo {
            queue: queue.to_owned(),
            available: 0,
            running: 0,
            oldest_available_age_seconds: 0.0,
            paused: None,
        }))
    }

    /// Check the job is the caller's, then change it in the same transaction with the caller
    /// named as the actor of whatever the change moves.
    async fn act_on_job(
        &self,
        caller: &Caller,
        id: JobId,
        request_id: Option<&str>,
        action: JobAction,
    ) -> Result<Job, EvidenceError> {
        self.require_jobs(caller)?;
        let mut tx = self.begin(caller).await?;
        self.reachable_job(&mut tx, caller, id).await?;
        store::set_actor(&mut tx, &Actor::key(caller), request_id).await?;
        let changed = match action {
            JobAction::Cancel => queue::store::cancel(&self.jobs, &mut tx, id).await,
            JobAction::Retry => queue::store::retry(&self.jobs, &mut tx, id).await,
        };
        let job = changed.map_err(|e| match e {
            queue::Error::NotFound(id) => EvidenceError::JobNotFound(id),
            e @ queue::Error::WrongState { .. } => EvidenceError::JobWrongState(e.to_string()),
            queue::Error::UniqueConflict => EvidenceError::JobKeyTaken,
            e => e.into(),
        })?;
        tx.commit().await?;
        Ok(job)
    }

    /// The job, if the caller reaches it; else `JobNotFound`, as for a job that does not exist.
    async fn reachable_job(
        &self,
        conn: &mut sqlx::PgConnection,
        caller: &Caller,
        id: JobId,
    ) -> Result<Job, EvidenceError> {
        let job = queue::store::get(&self.jobs, &mut *conn, id).await?;
        let reachable = |job: &Job| match self.job_scope(caller) {
            None => true,
            Some(scope) => scope.as_object().is_some_and(|s| s.iter().all(|(k, v)| job.payload.get(k) == Some(v))),
        };
        job.filter(reachable).ok_or(EvidenceError::JobNotFound(id))
    }

    /// The payload every job the caller reaches contains; `None`: every job (the operator's).
    fn job_scope(&self, caller: &Caller) -> Option<serde_json::Value> {
        (!self.is_operator(caller)).then(|| json!({ "tenant": caller.tenant }))
    }

    fn is_operator(&self, caller: &Caller) -> bool {
        self.operator_tenant.as_ref() == Some(&caller.tenant) && caller.role.allows(Action::OperateJobs)
    }

    fn require_jobs(&self, caller: &Caller) -> Result<(), EvidenceError> {
        caller.require(Action::OperateJobs)?;
        caller.require_every_case("operating the job queue")
    }

    fn require_operator(&self, caller: &Caller) -> Result<(), EvidenceError> {
        self.require_jobs(caller)?;
        if self.is_operator(caller) {
            return Ok(());
        }
        let message = match &self.operator_tenant {
            Some(t) => format!(
                "pausing, resuming and listing queues concern every tenant: only admin keys of the operator tenant `{t}` may"
            ),
            None => "pausing, resuming and listing queues concern every tenant: the API allows them to admin keys of \
                     the tenant named by API_OPERATOR_TENANT, which is not set"
                .to_owned(),
        };
        Err(EvidenceError::Forbidden { code: "operator_only", message })
    }
}

enum JobAction {
    Cancel,
    Retry,
}

fn valid_queue_name(queue: &str) -> Result<(), EvidenceError> {
    let ok = (1..=100).contains(&queue.chars().count()) && !queue.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(EvidenceError::Invalid("a queue name is 1 to 100 characters without control characters".into()))
    }
}
