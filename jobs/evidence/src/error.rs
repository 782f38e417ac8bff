//! What can go wrong with an evidence operation, by variant: the API maps each to a status and a
//! code, never by message.

use crate::model::{EvidenceId, EvidenceStatus, Invalid};
use crate::storage::StorageError;

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
    #[error(
        "the upload window of evidence {id} closed at {at}: nothing uploaded to it is kept; create the evidence again (with another Idempotency-Key)"
    )]
    UploadExpired { id: EvidenceId, at: chrono::DateTime<chrono::Utc> },
    #[error(
        "evidence {id} is uploaded in parts: PUT each part to its URL, then complete it with the parts' ETags (complete-multipart)"
    )]
    PartsRequired { id: EvidenceId },
    #[error("evidence {id} is uploaded with one PUT: complete it without parts")]
    NotMultipart { id: EvidenceId },
    /// The parts named do not make the upload (numbering, count), or the store refused them.
    #[error("{0}")]
    PartsRejected(String),
    #[error("the uploaded object is {actual} bytes but {declared} were declared")]
    SizeMismatch { declared: u64, actual: u64 },
    #[error("evidence {id} is {status}; {action} needs {needs}")]
    WrongStatus { id: EvidenceId, status: EvidenceStatus, action: &'static str, needs: &'static str },
    #[error("an ingest job for evidence {0} is already active")]
    JobActive(EvidenceId),
    /// The query holds nothing a search can look for (only stop words, or only exclusions).
    #[error("{0}")]
    QueryEmpty(String),
    #[error("searches are at their limit (too many at once, or this one ran past its time)")]
    SearchBusy,
    /// No usable API key: missing, not shaped like one, unknown, or revoked.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The key is valid but may not do this (`role_not_allowed`, `case_out_of_scope`).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// No such job among the caller's (another tenant's job does not exist for it).
    #[error("job {0} not found")]
    JobNotFound(queue::JobId),
    /// The job is not in a state the action starts from ("job 42 is completed; cancel needs …").
    #[error("{0}")]
    JobWrongState(String),
    /// Another active job has the same unique key (a retry would run the same work twice).
    #[error("another active job does the same work (the same unique key); wait for it or cancel it first")]
    JobKeyTaken,
    #[error("no API key with prefix `{0}`")]
    KeyNotFound(String),
    #[error("a key cannot revoke itself: revoke it with another admin key, or with `api keys revoke`")]
    OwnKey,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Queue(#[from] queue::Error),
}

impl EvidenceError {
    /// The database could not be reached (rather than refusing the request): retry later.
    pub fn database_unavailable(&self) -> bool {
        let db = match self {
            EvidenceError::Db(e) | EvidenceError::Queue(queue::Error::Db(e)) => e,
            _ => return false,
        };
        queue::database_unreachable(db)
    }
}

impl From<Invalid> for EvidenceError {
    fn from(e: Invalid) -> Self {
        EvidenceError::Invalid(e.0)
    }
}
