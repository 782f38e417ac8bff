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

pub use queue::{Job, JobFilter, JobId, JobState, QueueOverview};
use serde_json::json;

use crate::access::{Action, Caller};
use crate::custody::Actor;
use crate::error::EvidenceError;
use crate::service::Service;
use crate::store;

impl Service {
    /// Jobs the caller reaches that match `filter`, newest first, at most `limit` (the API bounds
    /// it and asks for one more than a page, to learn whether another follows).
    pub async fn list_jobs(&self, caller: &Caller, filter: JobFilter, limit: i64) -> Result<Vec<Job>, EvidenceError> {
        self.require_jobs(caller)?;
        let filter = JobFilter { payload_contains: self.job_scope(caller), ..filter };
        let mut tx = self.begin(caller).await?;
        let jobs = queue::store::list(&self.jobs, &mut *tx, &filter, limit).await?;
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
    pub async fn queues(&self, caller: &Caller) -> Result<Vec<QueueOverview>, EvidenceError> {
        self.require_operator(caller)?;
        let mut tx = self.begin(caller).await?;
        let queues = queue::store::queues(&self.jobs, &mut *tx).await?;
        store::end_read(tx);
        Ok(queues)
    }

    /// Stop every worker from claiming in `queue` (operator keys). A queue can be paused before
    /// it has jobs; pausing a paused queue keeps the first pause.
    pub async fn pause_queue(&self, caller: &Caller, queue: &str) -> Result<QueueOverview, EvidenceError> {
        self.require_operator(caller)?;
        valid_queue_name(queue)?;
        let by = format!("api key {} ({})", caller.key_prefix, caller.key_name);
        let mut tx = self.begin(caller).await?;
        queue::store::pause(&self.jobs, &mut *tx, queue, &by).await?;
        let overview = overview_in(&self.jobs, &mut tx, queue).await?;
        tx.commit().await?;
        Ok(overview)
    }

    /// Let workers claim in `queue` again (operator keys); resuming a queue that is not paused
    /// changes nothing.
    pub async fn resume_queue(&self, caller: &Caller, queue: &str) -> Result<QueueOverview, EvidenceError> {
        self.require_operator(caller)?;
        valid_queue_name(queue)?;
        let mut tx = self.begin(caller).await?;
        queue::store::resume(&self.jobs, &mut tx, queue).await?;
        let overview = overview_in(&self.jobs, &mut tx, queue).await?;
        tx.commit().await?;
        Ok(overview)
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

/// `queue` as the transaction sees it (all zeros and no pause when it has neither jobs nor one).
async fn overview_in(
    jobs: &queue::JobTable,
    conn: &mut sqlx::PgConnection,
    queue: &str,
) -> Result<QueueOverview, EvidenceError> {
    let found = queue::store::queues(jobs, &mut *conn).await?.into_iter().find(|q| q.queue == queue);
    Ok(found.unwrap_or(QueueOverview {
        queue: queue.to_owned(),
        available: 0,
        running: 0,
        oldest_available_age_seconds: 0.0,
        paused_at: None,
        paused_by: None,
    }))
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
