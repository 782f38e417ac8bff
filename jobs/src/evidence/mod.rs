//! The evidence domain: uploads (presign → complete), the ingest job (stream, hash, dedup,
//! extract, index), and search. The API calls these functions; it never writes SQL.

mod ingest;
mod model;
pub mod store;

pub use ingest::{IngestEvidence, IngestHandler, register};
pub use model::*;

use crate::queue::{self, NewJob};
use crate::storage::{PresignedPut, Storage, StorageError};
use sqlx::PgPool;

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("evidence {0} not found")]
    NotFound(EvidenceId),
    #[error("{0}")]
    Invalid(String),
    #[error("Idempotency-Key was already used for a different request (evidence {0})")]
    IdempotencyMismatch(EvidenceId),
    #[error("no object was uploaded for evidence {id}: PUT the bytes to the presigned URL first")]
    UploadMissing { id: EvidenceId },
    #[error("the uploaded object is {actual} bytes but {declared} were declared")]
    SizeMismatch { declared: u64, actual: u64 },
    #[error("evidence {id} is {status}; {action} needs {needs}")]
    WrongStatus { id: EvidenceId, status: EvidenceStatus, action: &'static str, needs: &'static str },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Queue(#[from] queue::Error),
}

/// A created (or, for a repeated Idempotency-Key, the existing) evidence row and its upload.
#[derive(Debug)]
pub struct Created {
    pub evidence: Evidence,
    pub upload: Option<PresignedPut>,
    /// False when an earlier request with the same Idempotency-Key made it.
    pub created: bool,
}

/// Validate, insert and presign. A repeated Idempotency-Key with the same request returns the
/// same evidence (with a fresh URL while the upload is still awaited).
pub async fn create(
    pool: &PgPool,
    storage: &Storage,
    new: NewEvidence,
    max_object_bytes: u64,
) -> Result<Created, EvidenceError> {
    new.validate(max_object_bytes)?;
    let (evidence, created) = store::insert(pool, &new).await?;
    if !created && !evidence.same_request(&new) {
        return Err(EvidenceError::IdempotencyMismatch(evidence.id));
    }
    let upload = if evidence.status == EvidenceStatus::AwaitingUpload {
        Some(
            storage
                .presign_put(&evidence.object_key, &evidence.content_type, evidence.declared_sha256.as_deref())
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
pub async fn complete(
    pool: &PgPool,
    storage: &Storage,
    id: EvidenceId,
    request_id: Option<&str>,
    max_attempts: i32,
) -> Result<(Evidence, bool), EvidenceError> {
    let evidence = store::get(pool, id).await?.ok_or(EvidenceError::NotFound(id))?;
    if evidence.status != EvidenceStatus::AwaitingUpload {
        return Ok((evidence, false));
    }
    let Some(size) = storage.head(&evidence.object_key).await? else {
        return Err(EvidenceError::UploadMissing { id });
    };
    if size != evidence.size_bytes as u64 {
        return Err(EvidenceError::SizeMismatch { declared: evidence.size_bytes as u64, actual: size });
    }
    match enqueue_ingest(pool, id, EvidenceStatus::AwaitingUpload, request_id, max_attempts).await? {
        Some(queued) => Ok((queued, true)),
        // Another complete won the race: answer with the state it left.
        None => Ok((store::get(pool, id).await?.ok_or(EvidenceError::NotFound(id))?, false)),
    }
}

/// A presigned GET for evidence whose bytes were verified (`indexed`), with how long it is valid.
/// Earlier the object may be missing or not yet checked against its checksum.
pub async fn download(
    pool: &PgPool,
    storage: &Storage,
    id: EvidenceId,
) -> Result<(Evidence, String, std::time::Duration), EvidenceError> {
    let evidence = store::get(pool, id).await?.ok_or(EvidenceError::NotFound(id))?;
    if evidence.status != EvidenceStatus::Indexed {
        return Err(EvidenceError::WrongStatus {
            id,
            status: evidence.status,
            action: "download",
            needs: "indexed (its bytes stored and verified)",
        });
    }
    let (url, expires_in) = storage.presign_get(&evidence.object_key, &evidence.filename).await?;
    Ok((evidence, url, expires_in))
}

/// Queue an indexed or failed evidence again (after fixing the cause of an `index_error`, or
/// to re-extract). Its content row is kept; the job re-checks the object.
pub async fn reindex(
    pool: &PgPool,
    id: EvidenceId,
    request_id: Option<&str>,
    max_attempts: i32,
) -> Result<Evidence, EvidenceError> {
    let evidence = store::get(pool, id).await?.ok_or(EvidenceError::NotFound(id))?;
    let from = match evidence.status {
        EvidenceStatus::Indexed | EvidenceStatus::IndexError => evidence.status,
        status => {
            return Err(EvidenceError::WrongStatus { id, status, action: "reindex", needs: "indexed or index_error" });
        }
    };
    match enqueue_ingest(pool, id, from, request_id, max_attempts).await? {
        Some(queued) => Ok(queued),
        None => {
            // Someone else moved it first; report what it is now.
            let now = store::get(pool, id).await?.ok_or(EvidenceError::NotFound(id))?;
            Err(EvidenceError::WrongStatus {
                id,
                status: now.status,
                action: "reindex",
                needs: "indexed or index_error",
            })
        }
    }
}

/// `from → queued` and the ingest job, in one transaction; the queued evidence, or `None` when
/// the row was not in `from`.
async fn enqueue_ingest(
    pool: &PgPool,
    id: EvidenceId,
    from: EvidenceStatus,
    request_id: Option<&str>,
    max_attempts: i32,
) -> Result<Option<Evidence>, EvidenceError> {
    let mut tx = pool.begin().await?;
    let Some(object) = store::mark_queued(&mut tx, id, from, request_id).await? else {
        return Ok(None);
    };
    let job = NewJob::from_args(&IngestEvidence { evidence_id: id.0, object: Some(object) })
        .map_err(|e| EvidenceError::Invalid(e.to_string()))?
        .unique_key(id.0.to_string())
        .max_attempts(max_attempts)
        .correlation_id(request_id.map(str::to_owned));
    // The status guard above means no ingest job is active for this evidence; if one is anyway
    // (a hand-made row), refuse rather than leave the evidence queued without its own job.
    let job_id = queue::store::enqueue(&mut *tx, &job).await?.ok_or(queue::Error::UniqueConflict)?;
    let queued = store::set_job(&mut tx, id, job_id).await?;
    tx.commit().await?;
    Ok(Some(queued))
}

/// Publish `evidence_by_status{status}` every `every` until `stop`; one process's view of a
/// global count (aggregate with max() across processes).
pub async fn report_status_counts(pool: PgPool, every: std::time::Duration, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store::status_counts(&pool).await {
            Ok(counts) => {
                for status in EvidenceStatus::ALL {
                    let n = counts.iter().find(|(s, _)| s == status.as_str()).map_or(0, |(_, n)| *n);
                    metrics::gauge!("evidence_by_status", "status" => status.as_str()).set(n as f64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "evidence status counts failed"),
        }
    }
}
