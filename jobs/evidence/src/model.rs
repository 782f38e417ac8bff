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

/// A tenant's id: 1 to 63 characters of `a-z`, `0-9` and `-`, starting with a letter or digit.
/// It is also the first segment of the tenant's object keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn new(id: &str) -> Result<Self, Invalid> {
        let valid = (1..=63).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !id.starts_with('-');
        if valid {
            Ok(Self(id.to_owned()))
        } else {
            Err(Invalid(format!("tenant `{id}` must be 1 to 63 characters of a-z, 0-9 and -, not starting with -")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TenantId {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Self::new(&s)
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> String {
        t.0
    }
}

/// `awaiting_upload → queued → indexed | index_error`; reindex goes back to `queued`;
/// `awaiting_upload → expired` when no upload completed within the upload window (final). Stored
/// as text (`evidence.status`, checked by `evidence_status_check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum EvidenceStatus {
    AwaitingUpload,
    Queued,
    Indexed,
    IndexError,
    Expired,
}

impl EvidenceStatus {
    pub const ALL: [EvidenceStatus; 5] = [
        EvidenceStatus::AwaitingUpload,
        EvidenceStatus::Queued,
        EvidenceStatus::Indexed,
        EvidenceStatus::IndexError,
        EvidenceStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceStatus::AwaitingUpload => "awaiting_upload",
            EvidenceStatus::Queued => "queued",
            EvidenceStatus::Indexed => "indexed",
            EvidenceStatus::IndexError => "index_error",
            EvidenceStatus::Expired => "expired",
        }
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
    /// Who collected it, when and from where, as the uploader declares it (fixed after upload).
    pub custody: CustodyFields,
    pub idempotency_key: Option<String>,
    pub request_id: Option<String>,
}

/// The declared chain-of-custody facts of an evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct CustodyFields {
    pub custodian: Option<String>,
    pub collected_at: Option<DateTime<Utc>>,
    pub source: Option<String>,
}

impl NewEvidence {
    /// Tags as they are stored: trimmed, sorted, without repeats.
    pub fn normalized_tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = self.tags.iter().map(|t| t.trim().to_owned()).collect();
        tags.sort();
        tags.dedup();
        tags
    }

    /// The content type as it is stored, signed into upload URLs and sent to the store: each part
    /// trimmed, parts joined by "; ", and no run of spaces. The store canonicalises a header value
    /// that way before it checks a signature, so a type with runs of spaces (valid, and once
    /// signed as written) made it refuse the multipart upload's start with SignatureDoesNotMatch.
    pub fn canonical_content_type(&self) -> String {
        let parts: Vec<&str> = self.content_type.split(';').map(str::trim).collect();
        parts.join("; ").split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Check the declaration; each failure says which field is wrong and what it must be.
    /// Lengths count characters, not bytes.
    pub fn validate(&self, max_object_bytes: u64) -> Result<(), Invalid> {
        let invalid = |m: String| Err(Invalid(m));
        let chars = |s: &str| s.chars().count();
        let name = self.filename.trim();
        if name.is_empty() || chars(name) > 255 {
            return invalid(format!("filename must be 1 to 255 characters (it has {})", chars(name)));
        }
        if self.filename.contains(['/', '\\']) {
            return invalid("filename must not contain '/' or '\\': send the name only, not a path".into());
        }
        if let Some(c) = self.filename.chars().find(|c| c.is_control() || is_bidi_control(*c)) {
            return invalid(format!(
                "filename must not contain control or bidirectional-override characters (found U+{:04X})",
                c as u32
            ));
        }
        if let Err(why) = check_media_type(&self.content_type) {
            return invalid(format!("content_type {:?} is not a media type like text/plain: {why}", self.content_type));
        }
        if self.size_bytes < 0 || self.size_bytes as u64 > max_object_bytes {
            return invalid(format!("size_bytes must be between 0 and {max_object_bytes}"));
        }
        if let Some(sha) = &self.sha256
            && !is_sha256_hex(sha)
        {
            return invalid("sha256 must be 64 lower-case hex characters".into());
        }
        let plain = |s: &str| !s.chars().any(|c| c.is_control() || is_bidi_control(c));
        if self.tags.len() > 50 || self.tags.iter().any(|t| t.trim().is_empty() || chars(t) > 100 || !plain(t)) {
            return invalid("tags: at most 50, each 1 to 100 characters without control characters".into());
        }
        if self.case_id.as_ref().is_some_and(|c| c.trim().is_empty() || chars(c) > 200 || !plain(c)) {
            return invalid("case_id must be 1 to 200 characters without control characters".into());
        }
        if let Some(d) = &self.description {
            if chars(d) > 10_000 {
                return invalid(format!("description must be at most 10000 characters (it has {})", chars(d)));
            }
            if d.contains('\0') {
                return invalid("description must not contain NUL characters".into());
            }
        }
        if self.custody.custodian.as_ref().is_some_and(|c| c.trim().is_empty() || chars(c) > 200 || !plain(c)) {
            return invalid("custodian must be 1 to 200 characters without control characters".into());
        }
        if let Some(source) = &self.custody.source
            && (source.trim().is_empty() || chars(source) > 2_000 || source.contains('\0'))
        {
            return invalid("source must be 1 to 2000 characters, without NUL characters".into());
        }
        if self.idempotency_key.as_ref().is_some_and(|k| k.is_empty() || chars(k) > 200 || !plain(k)) {
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
    #[sqlx(flatten)]
    pub custody: CustodyFields,
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
    /// When the upload window closes (no presigned PUT is valid after it); `None`: never.
    pub upload_expires_at: Option<DateTime<Utc>>,
    /// The multipart upload the bytes go to, and its part size, for uploads larger than
    /// `UPLOAD_PART_BYTES` at create; `None`: one PUT.
    pub upload_id: Option<String>,
    pub upload_part_bytes: Option<i64>,
    /// The newest ingest job's id (jobs are pruned, so it may be gone).
    pub job_id: Option<JobId>,
    /// That job, while the queue still has it.
    #[sqlx(skip)]
    pub job: Option<JobSummary>,
    /// Where the verified bytes are (`<tenant>/content/<sha256>`), once verified.
    pub stored_key: Option<String>,
    /// The last periodic re-hash of the stored bytes, and whether they still matched.
    pub fixity_checked_at: Option<DateTime<Utc>>,
    pub fixity_ok: Option<bool>,
    // From the content row, once indexed.
    pub sha1: Option<String>,
    pub md5: Option<String>,
    pub media_type: Option<String>,
    pub extractor: Option<String>,
    pub text_bytes: Option<i64>,
    pub text_truncated: Option<bool>,
    pub extract_note: Option<String>,
    pub text_reason: Option<crate::extract::TextReason>,
    pub extractor_version: Option<i32>,
    /// What the document says of itself, as extracted.
    pub properties: Option<sqlx::types::Json<crate::extract::Properties>>,
    /// The container this evidence was found in (a ZIP archive, an e-mail), and where in it.
    pub parent_id: Option<EvidenceId>,
    pub member_path: Option<String>,
    /// 0 for a file handed over; its parent's depth + 1 for a member.
    pub depth: i32,
    /// The members of this container that were not made evidence, and why.
    pub family_note: Option<String>,
    /// The file handed over that this member's family descends from (`None` for that file).
    pub family_root: Option<EvidenceId>,
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

/// Characters that reorder how text is shown (embeddings, overrides, isolates, marks): in a
/// filename they can make `exe.txt` read as `txt.exe`.
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// `type/subtype` with optional `; name=value` parameters (RFC 9110 media types: ASCII tokens,
/// values a token or a quoted string), at most 255 characters. The reason when it is not.
pub(crate) fn check_media_type(media_type: &str) -> Result<(), &'static str> {
    fn token(s: &str) -> bool {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    }
    if media_type.len() > 255 {
        return Err("at most 255 characters");
    }
    if !media_type.is_ascii() {
        return Err("only ASCII characters are allowed");
    }
    let mut parts = media_type.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return Err("it needs a type and a subtype: type/subtype");
    };
    if !token(kind) || !token(subtype) {
        return Err("type and subtype must be tokens (letters, digits and !#$%&'*+-.^_`|~)");
    }
    for parameter in parts {
        let (name, value) = parameter.trim().split_once('=').ok_or("a parameter must be name=value")?;
        let quoted = value.len() >= 2
            && value.starts_with('"')
            && value.ends_with('"')
            && !value[1..value.len() - 1].bytes().any(|b| b.is_ascii_control());
        if !token(name) || !(token(value) || quoted) {
            return Err("a parameter must be name=value, the value a token or a quoted string");
        }
    }
    Ok(())
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
    pub sha1: Option<String>,
    pub md5: Option<String>,
    /// Evidence whose text is less than its file may hold, for this reason.
    pub text_reason: Option<crate::extract::TextReason>,
    /// The members of this container (its children in its family).
    pub parent_id: Option<EvidenceId>,
    /// Continue after this (created_at, id), as returned in the previous page's cursor.
    pub after: Option<(DateTime<Utc>, EvidenceId)>,
    pub limit: i64,
}

/// Which evidence a bulk reindex queues (indexed or index_error, by id): in one case, and/or
/// whose text an extraction older than `below_extractor_version` made (evidence without
/// content counts as older).
#[derive(Debug, Clone, Default)]
pub struct ReindexFilter {
    pub case_id: Option<String>,
    pub below_extractor_version: Option<i32>,
    /// Continue after this id (the previous batch's `next_cursor`).
    pub after: Option<EvidenceId>,
    pub limit: i64,
}

/// What one batch of a bulk reindex did.
#[derive(Debug, Clone)]
pub struct ReindexBatch {
    /// Queued again, each with a job of its own.
    pub queued: Vec<EvidenceId>,
    /// Matched, but an ingest job for it was active already or its status moved meanwhile.
    pub skipped: Vec<EvidenceId>,
    /// The last id looked at, when there may be more.
    pub next: Option<EvidenceId>,
}

#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Words, "quoted phrases", prefix*, or, -excluded (see `query::parse`).
    pub q: String,
    pub case_id: Option<String>,
    pub tag: Option<String>,
    /// Declared content type or sniffed media type.
    pub media_type: Option<String>,
    /// Continue after this (rank, created_at, id), the last hit of the previous page.
    pub after: Option<(f32, DateTime<Utc>, EvidenceId)>,
    pub limit: i64,
}

/// One page of hits, best first, how many the query has in all, and their facets.
#[derive(Debug, Clone)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    /// Hits counted: all of them when `total_exact`, else the first `API_SEARCH_MAX_HITS` found.
    pub total: i64,
    pub total_exact: bool,
    pub facets: Facets,
}

/// How many of all the hits of a search are in each case, of each type (sniffed, else
/// declared), with each tag and from each custodian: the 20 commonest of each, most hits first.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Facets {
    pub case_id: Vec<FacetCount>,
    pub media_type: Vec<FacetCount>,
    pub tag: Vec<FacetCount>,
    pub custodian: Vec<FacetCount>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FacetCount {
    pub value: String,
    pub count: i64,
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
    /// The page that chunk starts on, for paged text (PDF).
    pub page: Option<i32>,
    pub matched_text: bool,
    pub created_at: DateTime<Utc>,
    /// The container it was found in, and where in it (for a member).
    pub parent_id: Option<EvidenceId>,
    pub member_path: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_narrow() {
        for ok in ["acme", "a", "case-2024", "0x"] {
            assert!(TenantId::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "Acme", "a/b", "a b", "ä", &"a".repeat(64)] {
            assert!(TenantId::new(bad).is_err(), "{bad}");
        }
    }

    fn declared(filename: &str, content_type: &str) -> NewEvidence {
        NewEvidence {
            filename: filename.into(),
            content_type: content_type.into(),
            size_bytes: 1,
            ..Default::default()
        }
    }

    #[test]
    fn content_types_are_kept_in_the_form_the_store_signs() {
        let new = declared("a.txt", "sk/x ;   a=b;c=d  ;  q=\"x   y\"");
        assert_eq!(new.canonical_content_type(), "sk/x; a=b; c=d; q=\"x y\"");
        assert_eq!(declared("a.txt", "text/plain").canonical_content_type(), "text/plain");
    }

    #[test]
    fn media_types_are_type_slash_subtype_with_parameters() {
        for ok in [
            "text/plain",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "text/plain; charset=utf-8",
            "multipart/mixed; boundary=\"a b\"",
        ] {
            assert_eq!(check_media_type(ok), Ok(()), "{ok}");
        }
        for bad in [
            "text",
            "text/",
            "/plain",
            "text/pl ain",
            "téxt/plain",
            "text/plain; charset",
            "text/plain; a=b c",
            &format!("text/{}", "x".repeat(300)),
        ] {
            assert!(check_media_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filenames_are_counted_in_characters_and_show_what_they_are() {
        assert!(declared(&"é".repeat(255), "text/plain").validate(10).is_ok(), "255 characters, 510 bytes");
        let long = declared(&"é".repeat(256), "text/plain").validate(10).unwrap_err();
        assert!(long.0.contains("it has 256"), "{long}");
        for bad in ["a\u{202E}txt.exe", "tab\there", "a\0b", "dir/file", "dir\\file"] {
            assert!(declared(bad, "text/plain").validate(10).is_err(), "{bad:?}");
        }
    }
}
