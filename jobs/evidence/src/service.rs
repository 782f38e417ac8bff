//! What the API calls: uploads (presign → complete), reading, listing, download, reindex and
//! search, each one function over the store, the object store and the queue. The API never
//! writes SQL and never reads the job table: the job an evidence points at comes from here.

use std::sync::Arc;
use std::time::Duration;

use queue::{JobTable, NewJob};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::error::EvidenceError;
use crate::ingest::IngestEvidence;
use crate::model::{Evidence, EvidenceId, EvidenceStatus, ListFilter, NewEvidence, SearchHit, SearchQuery};
use crate::storage::{PresignedPut, Storage};
use crate::store;

/// A created (or, for a repeated Idempotency-Key, the existing) evidence row and its upload.
#[derive(Debug)]
pub struct Created {
    pub evidence: Evidence,
    pub upload: Option<PresignedPut>,
    /// False when an earlier request with the same Idempotency-Key made it.
    pub created: bool,
}

/// A presigned GET for verified bytes.
#[derive(Debug)]
pub struct DownloadUrl {
    pub evidence: Evidence,
    pub url: String,
    pub expires_in: Duration,
}

/// Everything the evidence operations need; cheap to clone.
#[derive(Debug, Clone)]
pub struct Service {
    pub pool: PgPool,
    pub storage: Arc<Storage>,
    pub jobs: JobTable,
    /// Largest upload accepted at create.
    pub max_object_bytes: u64,
    /// Attempts given to each ingest job.
    pub max_attempts: i32,
    pub searches: SearchLimits,
}

/// How much of the database searches may take: at most `concurrency` at once per process (the
/// rest of the pool stays free for uploads, reads and `/ready`), each cancelled by the server
/// after `timeout`.
#[derive(Debug, Clone)]
pub struct SearchLimits {
    permits: Arc<tokio::sync::Semaphore>,
    pub timeout: Duration,
}

impl SearchLimits {
    pub fn new(concurrency: usize, timeout: Duration) -> Self {
        Self { permits: Arc::new(tokio::sync::Semaphore::new(concurrency)), timeout }
    }
}

impl Default for SearchLimits {
    fn default() -> Self {
        Self::new(4, Duration::from_secs(5))
    }
}

impl Service {
    /// Validate, insert and presign. A repeated Idempotency-Key with the same request returns the
    /// same evidence (with a fresh URL while the upload is still awaited).
    pub async fn create(&self, new: NewEvidence) -> Result<Created, EvidenceError> {
        new.validate(self.max_object_bytes)?;
        let (evidence, created) = store::insert(&self.pool, &new).await?;
        if !created && !evidence.same_request(&new) {
            return Err(EvidenceError::IdempotencyMismatch(evidence.id));
        }
        let evidence = self.with_job(evidence).await?;
        let upload = if evidence.status == EvidenceStatus::AwaitingUpload {
            Some(
                self.storage
                    .presign_put(
                        &evidence.object_key,
                        &evidence.content_type,
                        evidence.size_bytes as u64,
                        evidence.declared_sha256.as_deref(),
                    )
                    .await?,
            )
        } else {
            None
        };
        Ok(Created { evidence, upload, created })
    }

    /// The client says the bytes are uploaded: check the object, then in one transaction mark the
    /// evidence queued and enqueue its ingest job. Repeating it is a no-op that returns the state.
    /// The flag is true when this call queued it.
    pub async fn complete(&self, id: EvidenceId, request_id: Option<&str>) -> Result<(Evidence, bool), EvidenceError> {
        let evidence = self.get(id).await?;
        if evidence.status != EvidenceStatus::AwaitingUpload {
            return Ok((evidence, false));
        }
        let Some(size) = self.storage.head(&evidence.object_key).await? else {
            return Err(EvidenceError::UploadMissing { id });
        };
        if size != evidence.size_bytes as u64 {
            // Nothing that was refused stays in the bucket; the upload URL still works for the
            // right bytes until it expires.
            if let Err(e) = self.storage.delete(&evidence.object_key).await {
                tracing::warn!(evidence_id = %id, error = %e, "could not delete the refused object");
            }
            return Err(EvidenceError::SizeMismatch { declared: evidence.size_bytes as u64, actual: size });
        }
        match self.enqueue_ingest(id, EvidenceStatus::AwaitingUpload, request_id).await? {
            Some(queued) => Ok((queued, true)),
            // Another complete won the race: answer with the state it left.
            None => Ok((self.get(id).await?, false)),
        }
    }

    /// One evidence with its current job.
    pub async fn get(&self, id: EvidenceId) -> Result<Evidence, EvidenceError> {
        let evidence = self.row(id).await?;
        self.with_job(evidence).await
    }

    /// One evidence without its job, for operations that only look at its own columns.
    async fn row(&self, id: EvidenceId) -> Result<Evidence, EvidenceError> {
        store::get(&self.pool, id).await?.ok_or(EvidenceError::NotFound(id))
    }

    /// One page of evidence, newest first, each with its current job.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<Evidence>, EvidenceError> {
        let mut items = store::list(&self.pool, filter).await?;
        let ids: Vec<_> = items.iter().filter_map(|e| e.job_id).collect();
        let jobs = queue::store::summaries(&self.jobs, &self.pool, &ids).await?;
        for e in &mut items {
            e.job = e.job_id.and_then(|id| jobs.iter().find(|j| j.id == id).cloned());
        }
        Ok(items)
    }

    /// Ranked full-text search over indexed evidence, within the search limits: beyond them, or
    /// past the timeout, `SearchBusy` (the caller should retry shortly).
    pub async fn search(&self, query: &SearchQuery) -> Result<Vec<SearchHit>, EvidenceError> {
        let Ok(_permit) = self.searches.permits.try_acquire() else {
            metrics::counter!("evidence_searches_refused_total", "reason" => "busy").increment(1);
            return Err(EvidenceError::SearchBusy);
        };
        match store::search(&self.pool, query, self.searches.timeout).await {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(store::QUERY_CANCELED) => {
                metrics::counter!("evidence_searches_refused_total", "reason" => "timeout").increment(1);
                Err(EvidenceError::SearchBusy)
            }
            other => Ok(other?),
        }
    }

    /// A presigned GET for evidence whose bytes were verified (`indexed`), with how long it is
    /// valid. Earlier the object may be missing or not yet checked against its checksum.
    pub async fn download(&self, id: EvidenceId) -> Result<DownloadUrl, EvidenceError> {
        let evidence = self.row(id).await?;
        if evidence.status != EvidenceStatus::Indexed {
            return Err(EvidenceError::WrongStatus {
                id,
                status: evidence.status,
                action: "download",
                needs: "indexed (its bytes stored and verified)",
            });
        }
        let (url, expires_in) = self.storage.presign_get(&evidence.object_key, &evidence.filename).await?;
        Ok(DownloadUrl { evidence, url, expires_in })
    }

    /// Queue an indexed or failed evidence again (after fixing the cause of an `index_error`, or
    /// to re-extract). Its content row is kept; the job re-checks the object.
    pub async fn reindex(&self, id: EvidenceId, request_id: Option<&str>) -> Result<Evidence, EvidenceError> {
        let evidence = self.row(id).await?;
        let needs = "indexed or index_error";
        let from = match evidence.status {
            EvidenceStatus::Indexed | EvidenceStatus::IndexError => evidence.status,
            status => return Err(EvidenceError::WrongStatus { id, status, action: "reindex", needs }),
        };
        match self.enqueue_ingest(id, from, request_id).await? {
            Some(queued) => Ok(queued),
            // Someone else moved it first; report what it is now.
            None => {
                Err(EvidenceError::WrongStatus { id, status: self.row(id).await?.status, action: "reindex", needs })
            }
        }
    }

    /// The database answers within 2 s (for `/ready`).
    pub async fn database_ready(&self) -> bool {
        matches!(tokio::time::timeout(Duration::from_secs(2), store::ping(&self.pool)).await, Ok(Ok(())))
    }

    /// `from → queued` and the ingest job, in one transaction; the queued evidence, or `None` when
    /// the row was not in `from`.
    async fn enqueue_ingest(
        &self,
        id: EvidenceId,
        from: EvidenceStatus,
        request_id: Option<&str>,
    ) -> Result<Option<Evidence>, EvidenceError> {
        let mut tx = self.pool.begin().await?;
        let Some(object) = store::mark_queued(&mut tx, id, from, request_id).await? else {
            return Ok(None);
        };
        let job = NewJob::from_args(&IngestEvidence { evidence_id: id.0, object: Some(object) })
            .map_err(|e| EvidenceError::Invalid(e.to_string()))?
            .unique_key(id.0.to_string())
            .max_attempts(self.max_attempts)
            .correlation_id(request_id.map(str::to_owned));
        // The status guard above means no ingest job is active for this evidence; if one is anyway
        // (a hand-made row), refuse rather than leave the evidence queued without its own job.
        let job_id = queue::store::enqueue(&self.jobs, &mut *tx, &job).await?.ok_or(EvidenceError::JobActive(id))?;
        let mut queued = store::set_job(&mut tx, id, job_id).await?;
        queued.job = queue::store::summaries(&self.jobs, &mut *tx, &[job_id]).await?.pop();
        tx.commit().await?;
        Ok(Some(queued))
    }

    async fn with_job(&self, mut evidence: Evidence) -> Result<Evidence, EvidenceError> {
        evidence.job = match evidence.job_id {
            Some(id) => queue::store::summaries(&self.jobs, &self.pool, &[id]).await?.pop(),
            None => None,
        };
        Ok(evidence)
    }
}

/// Publish `evidence_by_status{status}` every `every` until `stop`; one process's view of a
/// global count (aggregate with max() across processes).
pub async fn report_status_counts(pool: PgPool, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store::status_counts(&pool).await {
            Ok(counts) => {
                for status in EvidenceStatus::ALL {
                    let n = counts.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
                    metrics::gauge!("evidence_by_status", "status" => status.as_str()).set(n as f64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "evidence status counts failed"),
        }
    }
}
