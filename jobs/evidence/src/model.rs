//! Evidence types: inputs, rows as the API shows them, filters and search hits.

use chrono::{DateTime, Utc};
use queue::{JobId, JobState, JobSummary};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(transparent)]
pub struct EvidenceId(pub Uuid);

impl std::fmt::Display for EvidenceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// `awaiting_upload → queued → indexed | index_error`; reindex goes back to `queued`. Stored as
/// text (`evidence.status`, checked by `evidence_status_check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum EvidenceStatus {
    AwaitingUpload,
    Queued,
    Indexed,
    IndexError,
}

impl EvidenceStatus {
    pub const ALL: [EvidenceStatus; 4] =
        [EvidenceStatus::AwaitingUpload, EvidenceStatus::Queued, EvidenceStatus::Indexed, EvidenceStatus::IndexError];

    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceStatus::AwaitingUpload => "awaiting_upload",
            EvidenceStatus::Queued => "queued",
            EvidenceStatus::Indexed => "indexed",
            EvidenceStatus::IndexError => "index_error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for EvidenceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A declaration that breaks a rule; the message says which field and what it must be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// What a client declares when it asks for an upload.
#[derive(Debug, Clone, Default)]
pub struct NewEvidence {
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: Option<String>,
    pub case_id: Option<String>,
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub idempotency_key: Option<String>,
    pub request_id: Option<String>,
}

impl NewEvidence {
    /// Tags as they are stored: trimmed, sorted, without repeats.
    pub fn normalized_tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = self.tags.iter().map(|t| t.trim().to_owned()).collect();
        tags.sort();
        tags.dedup();
        tags
    }

    /// Check the declaration; each failure says which field is wrong and what it must be.
    pub fn validate(&self, max_object_bytes: u64) -> Result<(), Invalid> {
        let invalid = |m: String| Err(Invalid(m));
        if self.filename.trim().is_empty() || self.filename.len() > 255 {
            return invalid("filename must be 1 to 255 characters".into());
        }
        if self.filename.contains(['/', '\\', '\0']) {
            return invalid("filename must not contain '/', '\\' or NUL: send the name only, not a path".into());
        }
        let ct = &self.content_type;
        if ct.len() > 255 || !ct.contains('/') || ct.chars().any(|c| c.is_control()) {
            return invalid(format!("content_type {ct:?} is not a media type like text/plain"));
        }
        if self.size_bytes < 0 || self.size_bytes as u64 > max_object_bytes {
            return invalid(format!("size_bytes must be between 0 and {max_object_bytes}"));
        }
        if let Some(sha) = &self.sha256
            && !is_sha256_hex(sha)
        {
            return invalid("sha256 must be 64 lower-case hex characters".into());
        }
        if self.tags.len() > 50 || self.tags.iter().any(|t| t.trim().is_empty() || t.len() > 100) {
            return invalid("tags: at most 50, each 1 to 100 characters".into());
        }
        if self.case_id.as_ref().is_some_and(|c| c.trim().is_empty() || c.len() > 200) {
            return invalid("case_id must be 1 to 200 characters".into());
        }
        if self.description.as_ref().is_some_and(|d| d.len() > 10_000) {
            return invalid("description must be at most 10000 characters".into());
        }
        if self.idempotency_key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 200) {
            return invalid("Idempotency-Key must be 1 to 200 characters".into());
        }
        Ok(())
    }
}

/// An evidence row as people see it: its own columns, its content, and its current ingest job
/// (read through the queue, attached by the service).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Evidence {
    pub id: EvidenceId,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub declared_sha256: Option<String>,
    pub case_id: Option<String>,
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub status: EvidenceStatus,
    pub object_key: String,
    pub sha256: Option<String>,
    pub duplicate: Option<bool>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub queued_at: Option<DateTime<Utc>>,
    pub indexed_at: Option<DateTime<Utc>>,
    /// The newest ingest job's id (jobs are pruned, so it may be gone).
    pub job_id: Option<JobId>,
    /// That job, while the queue still has it.
    #[sqlx(skip)]
    pub job: Option<JobSummary>,
    // From the content row, once indexed.
    pub media_type: Option<String>,
    pub extractor: Option<String>,
    pub text_bytes: Option<i64>,
    pub text_truncated: Option<bool>,
    pub extract_note: Option<String>,
}

impl Evidence {
    /// The same declaration as `new` (for Idempotency-Key replays).
    pub fn same_request(&self, new: &NewEvidence) -> bool {
        let tags = new.normalized_tags();
        self.filename == new.filename.trim()
            && self.content_type == new.content_type
            && self.size_bytes == new.size_bytes
            && self.declared_sha256 == new.sha256
            && self.case_id == new.case_id
            && self.tags == tags
    }

    /// The current ingest job's state, while the queue has it.
    pub fn job_state(&self) -> Option<JobState> {
        self.job.as_ref().map(|j| j.state)
    }

    /// `queued` evidence whose job a worker holds right now.
    pub fn is_indexing(&self) -> bool {
        self.status == EvidenceStatus::Queued && self.job_state() == Some(JobState::Running)
    }

    /// `queued` evidence whose last attempt failed and waits for its retry: when it runs next.
    pub fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        let job = self.job.as_ref()?;
        (self.status == EvidenceStatus::Queued && job.state == JobState::Available).then_some(job.run_at)
    }
}

/// A sha256 as this service writes it: 64 lower-case hex characters.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Filters and keyset position for listing, newest first.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<EvidenceStatus>,
    pub case_id: Option<String>,
    pub tag: Option<String>,
    /// Evidence whose stored bytes have this checksum (all copies of one file).
    pub sha256: Option<String>,
    /// Continue after this (created_at, id), as returned in the previous page's cursor.
    pub after: Option<(DateTime<Utc>, EvidenceId)>,
    pub limit: i64,
}

#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Web-search syntax: words, "quoted phrases", OR, -excluded.
    pub q: String,
    pub case_id: Option<String>,
    pub tag: Option<String>,
    /// Declared content type or sniffed media type.
    pub media_type: Option<String>,
    pub limit: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SearchHit {
    pub id: EvidenceId,
    pub filename: String,
    pub content_type: String,
    pub media_type: Option<String>,
    pub case_id: Option<String>,
    pub tags: Vec<String>,
    pub sha256: Option<String>,
    pub rank: f32,
    /// Matching words highlighted with «…» from the best chunk; `None` for metadata-only hits.
    pub snippet: Option<String>,
    pub matched_text: bool,
    pub created_at: DateTime<Utc>,
}
