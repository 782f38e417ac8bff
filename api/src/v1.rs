//! The `/v1` endpoints, `/v1/evidence` and `/v1/search`: the upload flow, status, listing,
//! reindex and search.
//! DTOs live here and are converted from domain types; they are not database rows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use evidence::extract::{EXTRACTOR_VERSION, Properties, TextReason};
use evidence::{
    CustodyFields, Evidence, EvidenceId, EvidenceStatus, ListFilter, NewEvidence, ReindexFilter, SearchHit, SearchPage,
    SearchQuery, UploadPlan,
};
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Tags};
use uuid::Uuid;

use crate::auth::ApiKey;
use crate::error::ApiError;
use crate::{AppState, RequestId};

#[derive(Tags)]
enum Tag {
    /// Upload evidence and follow it until it is indexed.
    Evidence,
    /// Full-text search over indexed evidence.
    Search,
}

/// Fields other than these are refused (422 `unknown_field`), not ignored.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateEvidence {
    /// The file's name as the client knows it (no path, no control or bidirectional-override
    /// characters). Used for display and search only: the storage key is made by the server.
    #[oai(validator(min_length = 1, max_length = 255))]
    pub filename: String,
    /// The media type the upload will be sent with, e.g. `application/pdf` or
    /// `text/plain; charset=utf-8` (ASCII `type/subtype`, parameters allowed).
    #[oai(validator(
        max_length = 255,
        pattern = r#"^[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+( *; *[!#$%&'*+.^_`|~0-9A-Za-z-]+=([!#$%&'*+.^_`|~0-9A-Za-z-]+|"[^"\u0000-\u001F]*"))*$"#
    ))]
    pub content_type: String,
    /// Exact size of the file in bytes; the upload URL admits exactly this many.
    #[oai(validator(minimum(value = "0")))]
    pub size_bytes: i64,
    /// Optional lower-case hex SHA-256 of the file. When given, the presigned URL pins it and
    /// the worker rejects other bytes.
    #[oai(validator(pattern = "^[0-9a-f]{64}$"))]
    pub sha256: Option<String>,
    #[oai(validator(min_length = 1, max_length = 200))]
    pub case_id: Option<String>,
    /// At most 50, each 1 to 100 characters.
    #[oai(default, validator(max_items = 50))]
    pub tags: Vec<String>,
    #[oai(validator(max_length = 10000))]
    pub description: Option<String>,
    /// Who collected the file (a person or an office). Fixed once the bytes are uploaded.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub custodian: Option<String>,
    /// When it was collected (RFC 3339). Fixed once the bytes are uploaded.
    pub collected_at: Option<DateTime<Utc>>,
    /// Where it came from (free text: a device, an account, a mailbox). Fixed once the bytes are uploaded.
    #[oai(validator(min_length = 1, max_length = 2000))]
    pub source: Option<String>,
}

#[derive(Debug, Object)]
pub struct Upload {
    /// Always `PUT`.
    pub method: String,
    pub url: String,
    /// Send exactly these headers with the bytes; the signature covers them.
    pub headers: BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
}

/// An upload in parts, for files larger than the part size (`UPLOAD_PART_BYTES`).
#[derive(Debug, Object)]
pub struct MultipartUpload {
    /// The size of every part but the last (which holds the rest).
    pub part_size_bytes: i64,
    /// One presigned PUT per part, in order: send bytes `(n-1)*part_size_bytes` onwards of the
    /// file to part `n`, keep the `ETag` header each PUT answers, then POST them all to
    /// `/v1/evidence/{id}/complete-multipart`.
    pub parts: Vec<UploadPart>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
pub struct UploadPart {
    pub part_number: u32,
    /// Always `PUT`.
    pub method: String,
    pub url: String,
    /// Send exactly these headers with the part's bytes; the signature covers them.
    pub headers: BTreeMap<String, String>,
}

/// The parts of a multipart upload, as their PUTs answered.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CompleteMultipart {
    /// Every part, 1 to N in order, with the `ETag` header its PUT answered (quotes and all).
    #[oai(validator(min_items = 1, max_items = 10000))]
    pub parts: Vec<CompletedPart>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CompletedPart {
    #[oai(validator(minimum(value = "1"), maximum(value = "10000")))]
    pub part_number: u32,
    #[oai(validator(min_length = 1, max_length = 200, pattern = r#"^[\x21-\x7e]+$"#))]
    pub etag: String,
}

/// Which evidence to queue again, in one batch of a bulk reindex.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ReindexRequest {
    /// Only this case's evidence.
    #[oai(validator(min_length = 1, max_length = 200, pattern = r"^[^\u0000]*$"))]
    pub case_id: Option<String>,
    /// Only evidence whose text an older version of the extraction made than the one this
    /// service runs (`extractor_version` in the answer; evidence without content counts as
    /// older): its bytes are read again by the current version.
    pub outdated: Option<bool>,
    /// Evidence looked at in this batch, by id: 1 to 200; default 100.
    #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous batch.
    pub cursor: Option<Uuid>,
}

/// What one batch of a bulk reindex did.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ReindexBatchView {
    /// Queued again, each with an ingest job of its own.
    pub queued: Vec<Uuid>,
    /// Matched but left as they are: an ingest job for it was active, or its status moved.
    pub skipped: Vec<Uuid>,
    /// Pass as `cursor` for the next batch; absent after the last.
    pub next_cursor: Option<Uuid>,
    /// The version of the extraction this service runs.
    pub extractor_version: i32,
}

/// Where to fetch verified evidence from.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Download {
    /// Always `GET`.
    pub method: String,
    /// A presigned URL; the response names the file by its original filename.
    pub url: String,
    pub expires_at: DateTime<Utc>,
    pub filename: String,
    pub size_bytes: i64,
    /// SHA-256 of the bytes verified at ingest: check the download against it.
    pub sha256: Option<String>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EvidenceCreated {
    pub evidence: EvidenceView,
    /// One PUT, for files up to the part size; absent once the upload has been completed.
    pub upload: Option<Upload>,
    /// An upload in parts, for larger files; absent once the upload has been completed.
    pub multipart_upload: Option<MultipartUpload>,
}

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum StatusView {
    AwaitingUpload,
    Queued,
    /// Queued, and a worker holds its job right now.
    Indexing,
    Indexed,
    IndexError,
    /// No upload was completed within the upload window; what was uploaded is deleted (final).
    Expired,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EvidenceView {
    pub id: Uuid,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub declared_sha256: Option<String>,
    /// SHA-256 of the stored bytes, once indexed (verified; never changes after).
    pub sha256: Option<String>,
    /// SHA-1 of the same bytes, from the same pass (absent for evidence verified before it was kept).
    pub sha1: Option<String>,
    /// MD5 of the same bytes, from the same pass (absent for evidence verified before it was kept).
    pub md5: Option<String>,
    pub case_id: Option<String>,
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub custodian: Option<String>,
    pub collected_at: Option<DateTime<Utc>>,
    pub source: Option<String>,
    pub status: StatusView,
    /// When the stored bytes were last hashed again (at ingest, then by the periodic fixity check).
    pub fixity_checked_at: Option<DateTime<Utc>>,
    /// False when that check found bytes that differ from the verified sha256.
    pub fixity_ok: Option<bool>,
    /// True when these bytes had already been ingested under other evidence.
    pub duplicate: Option<bool>,
    /// Attempts made by the current (or last) ingest.
    pub attempts: i32,
    pub max_attempts: Option<i32>,
    /// Why the last attempt failed; for `index_error`, why the evidence could not be indexed.
    pub last_error: Option<String>,
    /// When a failed attempt will be retried.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The type sniffed from the bytes.
    pub media_type: Option<String>,
    /// Which extractor produced the text: `text`, `html`, `pdf`, `pdf+ocr` (some pages read by
    /// OCR), `ocr` (an image read by OCR), `rtf`, `docx`, `pptx`, `opendocument`, `spreadsheet`, `email`,
    /// `zip` (its text is its entries' paths); `none`: indexed by metadata only.
    pub extractor: Option<String>,
    pub text_bytes: Option<i64>,
    pub text_truncated: Option<bool>,
    /// Why there is no text, or only part of it.
    pub extract_note: Option<String>,
    /// The same as one of a fixed set, whenever the file may hold text that was not indexed.
    pub text_reason: Option<TextReasonView>,
    /// The version of the extraction that made the text (see `POST /v1/reindex`).
    pub extractor_version: Option<i32>,
    /// What the document says of itself (null before extraction, or when it states nothing).
    pub properties: Option<PropertiesView>,
    /// The container this evidence was found in (a ZIP archive, an e-mail): it is one of its
    /// members, made evidence by the worker. Its own members: `GET /v1/evidence?parent_id=`.
    pub parent_id: Option<Uuid>,
    /// Where it was inside that container: the ZIP entry's path, the attachment's name.
    pub member_path: Option<String>,
    /// 0 for a file handed over; its container's depth + 1 for a member.
    pub depth: i32,
    /// For a container: its members that were not made evidence, and why (past
    /// `INGEST_FAMILY_MAX_DEPTH`, `_MEMBERS` or `_BYTES`, encrypted, unreadable).
    pub family_note: Option<String>,
    pub request_id: Option<String>,
    pub job_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub queued_at: Option<DateTime<Utc>>,
    pub indexed_at: Option<DateTime<Utc>>,
    /// While awaiting the upload: when its window closes (`UPLOAD_EXPIRY_SECS` after create);
    /// no upload URL is valid after it, and the evidence then becomes `expired`.
    pub upload_expires_at: Option<DateTime<Utc>>,
}

impl From<Evidence> for EvidenceView {
    fn from(e: Evidence) -> Self {
        let status = match e.status {
            _ if e.is_indexing() => StatusView::Indexing,
            EvidenceStatus::AwaitingUpload => StatusView::AwaitingUpload,
            EvidenceStatus::Queued => StatusView::Queued,
            EvidenceStatus::Indexed => StatusView::Indexed,
            EvidenceStatus::IndexError => StatusView::IndexError,
            EvidenceStatus::Expired => StatusView::Expired,
        };
        let next_attempt_at = e.next_attempt_at();
        // While queued, the attempts and error are the current job's; after, the evidence keeps them.
        let (attempts, last_error) = match (&e.job, e.status) {
            (Some(job), EvidenceStatus::Queued) => (job.attempt, job.last_error.clone()),
            (None, EvidenceStatus::Queued) => (0, None),
            _ => (e.attempts, e.last_error.clone()),
        };
        let max_attempts = e.job.as_ref().map(|j| j.max_attempts);
        EvidenceView {
            id: e.id.0,
            filename: e.filename,
            content_type: e.content_type,
            size_bytes: e.size_bytes,
            declared_sha256: e.declared_sha256,
            sha256: e.sha256,
            sha1: e.sha1,
            md5: e.md5,
            case_id: e.case_id,
            tags: e.tags,
            description: e.description,
            custodian: e.custody.custodian,
            collected_at: e.custody.collected_at,
            source: e.custody.source,
            status,
            fixity_checked_at: e.fixity_checked_at,
            fixity_ok: e.fixity_ok,
            duplicate: e.duplicate,
            attempts,
            max_attempts,
            last_error,
            next_attempt_at,
            media_type: e.media_type,
            extractor: e.extractor,
            text_bytes: e.text_bytes,
            text_truncated: e.text_truncated,
            extract_note: e.extract_note,
            text_reason: e.text_reason.map(Into::into),
            extractor_version: e.extractor_version,
            properties: e.properties.map(|p| p.0.into()),
            parent_id: e.parent_id.map(|id| id.0),
            member_path: e.member_path,
            depth: e.depth,
            family_note: e.family_note,
            request_id: e.request_id,
            job_id: e.job_id.map(|id| id.0),
            created_at: e.created_at,
            updated_at: e.updated_at,
            queued_at: e.queued_at,
            indexed_at: e.indexed_at,
            upload_expires_at: e.upload_expires_at,
        }
    }
}

/// The statuses a listing can filter by.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum StatusFilter {
    AwaitingUpload,
    Queued,
    Indexed,
    IndexError,
    Expired,
}

impl From<StatusFilter> for EvidenceStatus {
    fn from(s: StatusFilter) -> Self {
        match s {
            StatusFilter::AwaitingUpload => EvidenceStatus::AwaitingUpload,
            StatusFilter::Queued => EvidenceStatus::Queued,
            StatusFilter::Indexed => EvidenceStatus::Indexed,
            StatusFilter::IndexError => EvidenceStatus::IndexError,
            StatusFilter::Expired => EvidenceStatus::Expired,
        }
    }
}

/// What a document says of itself, as its format records it (a PDF's info dictionary, Office
/// and OpenDocument properties, an e-mail's headers): the file's own claims, not verified.
#[derive(Debug, Clone, Object)]
pub struct PropertiesView {
    pub title: Option<String>,
    /// Its author (an e-mail: From).
    pub author: Option<String>,
    /// When it was made, as the file gives it (ISO 8601 for PDF and Office files; an e-mail's Date).
    pub created: Option<String>,
    pub modified: Option<String>,
    /// Pages, or slides.
    pub pages: Option<i32>,
    /// The program that wrote it.
    pub application: Option<String>,
    /// An e-mail's To.
    pub to: Option<String>,
    /// An e-mail's Cc.
    pub cc: Option<String>,
}

impl From<Properties> for PropertiesView {
    fn from(p: Properties) -> Self {
        let Properties { title, author, created, modified, pages, application, to, cc } = p;
        PropertiesView { title, author, created, modified, pages, application, to, cc }
    }
}

/// Why evidence has less text than its file may hold.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum TextReasonView {
    /// A PDF with no text a reader could find: a scan, text drawn as shapes, or a structure the
    /// reader could not follow; and OCR off, or finding no text either.
    NoTextLayer,
    /// OCR of an image or of a PDF page without text failed.
    OcrFailed,
    /// Password-protected: a PDF, or an Office file encrypted as a whole.
    Encrypted,
    /// No text extractor for the type (archives, executables, Office 97–2003 files; images while
    /// OCR is off).
    UnsupportedType,
    /// The parser failed or crashed on the file.
    Corrupt,
    /// The extraction ran out of its time, or OCR stopped short of it with pages unread.
    Timeout,
    /// Over the parsing limit, or the extraction ran out of its memory.
    TooLarge,
    /// Text past the indexing limit was dropped.
    Truncated,
}

impl From<TextReason> for TextReasonView {
    fn from(r: TextReason) -> Self {
        match r {
            TextReason::NoTextLayer => TextReasonView::NoTextLayer,
            TextReason::OcrFailed => TextReasonView::OcrFailed,
            TextReason::Encrypted => TextReasonView::Encrypted,
            TextReason::UnsupportedType => TextReasonView::UnsupportedType,
            TextReason::Corrupt => TextReasonView::Corrupt,
            TextReason::Timeout => TextReasonView::Timeout,
            TextReason::TooLarge => TextReasonView::TooLarge,
            TextReason::Truncated => TextReasonView::Truncated,
        }
    }
}

impl From<TextReasonView> for TextReason {
    fn from(r: TextReasonView) -> Self {
        match r {
            TextReasonView::NoTextLayer => TextReason::NoTextLayer,
            TextReasonView::OcrFailed => TextReason::OcrFailed,
            TextReasonView::Encrypted => TextReason::Encrypted,
            TextReasonView::UnsupportedType => TextReason::UnsupportedType,
            TextReasonView::Corrupt => TextReason::Corrupt,
            TextReasonView::Timeout => TextReason::Timeout,
            TextReasonView::TooLarge => TextReason::TooLarge,
            TextReasonView::Truncated => TextReason::Truncated,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EvidencePage {
    pub items: Vec<EvidenceView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Hit {
    pub id: Uuid,
    pub filename: String,
    pub content_type: String,
    pub media_type: Option<String>,
    pub case_id: Option<String>,
    pub tags: Vec<String>,
    pub sha256: Option<String>,
    pub rank: f32,
    /// Matching words marked «like this», from the best-matching part of the text.
    pub snippet: Option<String>,
    /// The page of a PDF that part of the text starts on (it may run on to the next).
    pub page: Option<i32>,
    /// False when only the filename, tags or description matched.
    pub matched_text: bool,
    pub created_at: DateTime<Utc>,
    /// For a member of a container (a ZIP's file, an e-mail's attachment): the container's id,
    /// and where in it this was found.
    pub parent_id: Option<Uuid>,
    pub member_path: Option<String>,
}

impl From<SearchHit> for Hit {
    fn from(h: SearchHit) -> Self {
        Hit {
            id: h.id.0,
            filename: h.filename,
            content_type: h.content_type,
            media_type: h.media_type,
            case_id: h.case_id,
            tags: h.tags,
            sha256: h.sha256,
            rank: h.rank,
            snippet: h.snippet,
            page: h.page,
            parent_id: h.parent_id.map(|id| id.0),
            member_path: h.member_path,
            matched_text: h.matched_text,
            created_at: h.created_at,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SearchResults {
    pub query: String,
    /// The hits of the query (with its filters) on all pages: every one when `total_exact`;
    /// otherwise more than `API_SEARCH_MAX_HITS` match and this is how many of them, the first
    /// found, are ranked, paged and counted in the facets ("at least `total`"). Narrow the
    /// query (a case, a type, a tag, another word) to see the rest.
    pub total: i64,
    /// Whether `total` counts every hit (true) or is a lower bound (false).
    pub total_exact: bool,
    /// Best first.
    pub hits: Vec<Hit>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
    /// Of the hits counted in `total`: how many are in each case, of each type, with each tag and
    /// from each custodian (the 20 commonest of each, most first).
    pub facets: SearchFacets,
}

#[derive(Debug, Object)]
pub struct SearchFacets {
    pub case_id: Vec<FacetCountView>,
    /// Sniffed media type, else the declared content type.
    #[oai(rename = "type")]
    pub media_type: Vec<FacetCountView>,
    pub tag: Vec<FacetCountView>,
    pub custodian: Vec<FacetCountView>,
}

#[derive(Debug, Object)]
pub struct FacetCountView {
    pub value: String,
    pub count: i64,
}

impl From<evidence::Facets> for SearchFacets {
    fn from(f: evidence::Facets) -> Self {
        let views = |counts: Vec<evidence::FacetCount>| {
            counts.into_iter().map(|c| FacetCountView { value: c.value, count: c.count }).collect()
        };
        SearchFacets {
            case_id: views(f.case_id),
            media_type: views(f.media_type),
            tag: views(f.tag),
            custodian: views(f.custodian),
        }
    }
}

#[derive(ApiResponse)]
pub enum CreateResponse {
    /// Created: PUT the bytes to `upload.url`, then call complete.
    #[oai(status = 201)]
    Created(Json<EvidenceCreated>),
    /// The same Idempotency-Key was used before: the evidence it created.
    #[oai(status = 200)]
    Existing(Json<EvidenceCreated>),
}

#[derive(ApiResponse)]
pub enum QueuedResponse {
    /// Queued for ingestion now.
    #[oai(status = 202)]
    Accepted(Json<EvidenceView>),
    /// Already completed earlier: nothing changed; the current state.
    #[oai(status = 200)]
    Unchanged(Json<EvidenceView>),
}

impl QueuedResponse {
    /// 202 when this call queued the evidence, else 200 with its current state.
    fn of(evidence: Evidence, queued: bool) -> Self {
        let view = Json(evidence.into());
        if queued { QueuedResponse::Accepted(view) } else { QueuedResponse::Unchanged(view) }
    }
}

pub struct EvidenceApi;

const MAX_PAGE: u32 = 200;

fn page_limit(limit: Option<u32>, default: u32) -> Result<i64, ApiError> {
    match limit.unwrap_or(default) {
        0 => Err(ApiError::unprocessable("invalid_request", "limit must be at least 1")),
        n if n > MAX_PAGE => {
            Err(ApiError::unprocessable("invalid_request", format!("limit must be at most {MAX_PAGE}")))
        }
        n => Ok(n as i64),
    }
}

fn encode_cursor(e: &Evidence) -> String {
    format!("{}_{}", e.created_at.timestamp_micros(), e.id)
}

fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, EvidenceId), ApiError> {
    let bad = || ApiError::bad_request("bad_cursor", "cursor is not one returned by this endpoint");
    let (micros, id) = cursor.split_once('_').ok_or_else(bad)?;
    // Postgres timestamps end at year 294276, chrono's far later: only times this API can have
    // written (from 1970 to the end of year 9999) go on to the query.
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    if !(0..=253_402_300_799_999_999).contains(&micros) {
        return Err(bad());
    }
    let ts = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok((ts, EvidenceId(id.parse().map_err(|_| bad())?)))
}

/// A search cursor: the last hit's rank (its bits), then what `decode_cursor` reads.
fn decode_search_cursor(cursor: &str) -> Result<(f32, DateTime<Utc>, EvidenceId), ApiError> {
    let bad = || ApiError::bad_request("bad_cursor", "cursor is not one returned by this endpoint");
    let (bits, rest) = cursor.split_once('_').ok_or_else(bad)?;
    let rank = f32::from_bits(bits.parse().map_err(|_| bad())?);
    if !rank.is_finite() || rank < 0.0 {
        return Err(bad());
    }
    let (created_at, id) = decode_cursor(rest)?;
    Ok((rank, created_at, id))
}

#[OpenApi(prefix_path = "/v1")]
impl EvidenceApi {
    /// Ask to upload one file: returns the evidence id and a presigned PUT.
    ///
    /// Repeat the request with the same `Idempotency-Key` header to get the same evidence back
    /// (for example after a timeout) instead of a second one.
    #[oai(path = "/evidence", method = "post", tag = "Tag::Evidence", operation_id = "create_evidence")]
    async fn create(
        &self,
        state: Data<&AppState>,
        key: ApiKey,
        request_id: Data<&RequestId>,
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 200))] idempotency_key: Header<
            Option<String>,
        >,
        body: Json<CreateEvidence>,
    ) -> Result<CreateResponse, ApiError> {
        let caller = key.caller();
        let body = body.0;
        let new = NewEvidence {
            filename: body.filename,
            content_type: body.content_type,
            size_bytes: body.size_bytes,
            sha256: body.sha256,
            case_id: body.case_id,
            tags: body.tags,
            description: body.description,
            custody: CustodyFields { custodian: body.custodian, collected_at: body.collected_at, source: body.source },
            idempotency_key: idempotency_key.0,
            request_id: Some(request_id.0.0.clone()),
        };
        let created = state.service.create(caller, new).await?;
        let (mut upload, mut multipart_upload) = (None, None);
        match created.upload {
            Some(UploadPlan::Single(u)) => {
                let expires_at = Utc::now() + u.expires_in;
                upload = Some(Upload { method: "PUT".into(), url: u.url, headers: u.headers, expires_at });
            }
            Some(UploadPlan::Parts { part_bytes, parts }) => {
                let expires_at = Utc::now() + parts.first().map(|p| p.expires_in).unwrap_or_default();
                let parts = (1..)
                    .zip(parts)
                    .map(|(part_number, p)| UploadPart {
                        part_number,
                        method: "PUT".into(),
                        url: p.url,
                        headers: p.headers,
                    })
                    .collect();
                multipart_upload = Some(MultipartUpload { part_size_bytes: part_bytes as i64, parts, expires_at });
            }
            None => {}
        }
        tracing::info!(evidence_id = %created.evidence.id, created = created.created, "evidence upload presigned");
        let payload = Json(EvidenceCreated { evidence: created.evidence.into(), upload, multipart_upload });
        Ok(if created.created { CreateResponse::Created(payload) } else { CreateResponse::Existing(payload) })
    }

    /// Tell the service the upload is done: it checks the object and queues the ingest.
    ///
    /// Answers 409 `upload_missing` when nothing was uploaded, 422 `size_mismatch` when the
    /// object is not the declared size, 409 `parts_required` for an upload in parts (use
    /// complete-multipart). Calling it again is harmless.
    #[oai(path = "/evidence/:id/complete", method = "post", tag = "Tag::Evidence", operation_id = "complete_upload")]
    async fn complete(
        &self,
        state: Data<&AppState>,
        key: ApiKey,
        request_id: Data<&RequestId>,
        id: Path<Uuid>,
    ) -> Result<QueuedResponse, ApiError> {
        let caller = key.caller();
        let id = EvidenceId(id.0);
        let (evidence, queued) = state.service.complete(caller, id, Some(&request_id.0.0)).await?;
        tracing::info!(evidence_id = %id, status = %evidence.status, queued, "upload completed");
        Ok(QueuedResponse::of(evidence, queued))
    }

    /// Tell the service every part of a multipart upload is sent: the store joins them, then it
    /// checks the object and queues the ingest, as complete does.
    ///
    /// Answers 422 `parts_rejected` when the parts are not 1 to N in order or the store refuses
    /// them, 409 `not_multipart` for an upload made with one PUT. Calling it again is harmless.
    #[oai(
        path = "/evidence/:id/complete-multipart",
        method = "post",
        tag = "Tag::Evidence",
        operation_id = "complete_multipart_upload"
    )]
    async fn complete_multipart(
        &self,
        state: Data<&AppState>,
        key: ApiKey,
        request_id: Data<&RequestId>,
        id: Path<Uuid>,
        body: Json<CompleteMultipart>,
    ) -> Result<QueuedResponse, ApiError> {
        let caller = key.caller();
        let id = EvidenceId(id.0);
        let parts: Vec<_> = body.0.parts.into_iter().map(|p| (p.part_number, p.etag)).collect();
        let (evidence, queued) = state.service.complete_multipart(caller, id, &parts, Some(&request_id.0.0)).await?;
        tracing::info!(evidence_id = %id, status = %evidence.status, queued, parts = parts.len(), "multipart upload completed");
        Ok(QueuedResponse::of(evidence, queued))
    }

    /// One evidence: status, hashes, custody fields, attempts, last error, extraction facts.
    /// Each read is recorded in the evidence's custody log (`viewed`).
    #[oai(path = "/evidence/:id", method = "get", tag = "Tag::Evidence", operation_id = "get_evidence")]
    async fn get(
        &self,
        state: Data<&AppState>,
        key: ApiKey,
        request_id: Data<&RequestId>,
        id: Path<Uuid>,
    ) -> Result<Json<EvidenceView>, ApiError> {
        let caller = key.caller();
        Ok(Json(state.service.get(caller, EvidenceId(id.0), Some(&request_id.0.0)).await?.into()))
    }

    /// A presigned URL to download the evidence's original bytes.
    ///
    /// Only for `indexed` evidence, whose bytes were stored and checked against their sha256;
    /// otherwise 409 `wrong_status`.
    #[oai(path = "/evidence/:id/download", method = "get", tag = "Tag::Evidence", operation_id = "download_evidence")]
    async fn download(
        &self,
        state: Data<&AppState>,
        key: ApiKey,
        request_id: Data<&RequestId>,
        id: Path<Uuid>,
    ) -> Result<Json<Download>, ApiError> {
        let caller = key.caller();
        let id = EvidenceId(id.0);
        let d = state.service.download(caller, id, Some(&request_id.0.0)).await?;
        tracing::info!(evidence_id = %id, "download presigned");
        Ok(Json(Download {
            method: "GET".into(),
            url: d.url,
            expires_at: Utc::now() + d.expires_in,
            filename: d.evidence.filename,
            size_bytes: d.evidence.size_bytes,
            sha256: d.evidence.sha256,
        }))
    }

    /// Evidence, newest first, with filters; follow `next_cursor` for more.
    #[oai(path = "/evidence", method = "get", tag = "Tag::Evidence", operation_id = "list_evidence")]
    #[allow(clippy::too_many_arguments, reason = "each query parameter of the operation is an argument")]
    async fn list(
        &self,
        state: Data<&AppState>,
        key: ApiKey,
        status: Query<Option<StatusFilter>>,
        #[oai(validator(min_length = 1, max_length = 200, pattern = r"^[^\u0000]*$"))] case_id: Query<Option<String>>,
        #[oai(validator(min_length = 1, max_length = 100, pattern = r"^[^\u0000]*$"))] tag: Query<Option<String>>,
        /// Only evidence whose stored bytes have this sha256 (64 lower-case hex): every copy of one file.
        #[oai(validator(pattern = "^[0-9a-f]{64}$"))]
        sha256: Query<Option<String>>,
        /// Only evidence whose stored bytes have this SHA-1 (40 lower-case hex).
        #[oai(validator(pattern = "^[0-9a-f]{40}$"))]
        sha1: Query<Option<String>>,
        /// Only evidence whose stored bytes have this MD5 (32 lower-case hex).
        #[oai(validator(pattern = "^[0-9a-f]{32}$"))]
        md5: Query<Option<String>>,
        /// Only evidence whose text is less than its file may hold, for this reason.
        text_reason: Query<Option<TextReasonView>>,
        /// Only the members of this container (evidence found in it: a ZIP's files, an e-mail's attachments).
        parent_id: Query<Option<Uuid>>,
        /// 1 to 200; default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        #[oai(validator(pattern = "^[0-9]{1,18}_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"))]
        cursor: Query<Option<String>>,
    ) -> Result<Json<EvidencePage>, ApiError> {
        let caller = key.caller();
        let status = status.0.map(EvidenceStatus::from);
        let limit = page_limit(limit.0, 50)?;
        let after = cursor.0.as_deref().map(decode_cursor).transpose()?;
        let filter = ListFilter {
            status,
            case_id: case_id.0,
            tag: tag.0,
            sha256: sha256.0,
            sha1: sha1.0,
            md5: md5.0,
            text_reason: text_reason.0.map(Into::into),
            parent_id: parent_id.0.map(EvidenceId),
            after,
            limit: limit + 1,
        };
        let mut items = state.service.list(caller, &filter).await?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(encode_cursor)
        } else {
            None
        };
        Ok(Json(EvidencePage { items: items.into_iter().map(Into::into).collect(), next_cursor }))
    }

    /// Queue indexed or failed evidence again (e.g. after fixing the cause of an index_error).
    #[oai(path = "/evidence/:id/reindex", method = "post", tag = "Tag::Evidence", operation_id = "reindex_evidence")]
    async fn reindex(
        &self,
        state: Data<&AppState>,
        key: ApiKey,
        request_id: Data<&RequestId>,
        id: Path<Uuid>,
    ) -> Result<QueuedResponse, ApiError> {
        let caller = key.caller();
        let evidence = state.service.reindex(caller, EvidenceId(id.0), Some(&request_id.0.0)).await?;
        Ok(QueuedResponse::Accepted(Json(evidence.into())))
    }

    /// Queue again, in batches, the indexed or failed evidence of a case, or all whose text an
    /// older version of the extraction made (`outdated`), or both. Each is reindexed as by its
    /// own reindex, and bytes an older version read are extracted again. Call again with
    /// `next_cursor` until it is absent, at the pace the queue should take (`evidence reindex`
    /// does this at a set rate).
    #[oai(path = "/reindex", method = "post", tag = "Tag::Evidence", operation_id = "reindex_many")]
    async fn reindex_many(
        &self,
        state: Data<&AppState>,
        key: ApiKey,
        request_id: Data<&RequestId>,
        body: Json<ReindexRequest>,
    ) -> Result<Json<ReindexBatchView>, ApiError> {
        let caller = key.caller();
        let body = body.0;
        if body.case_id.is_none() && body.outdated != Some(true) {
            return Err(ApiError::unprocessable(
                "invalid_request",
                "say which evidence: case_id, outdated: true, or both",
            ));
        }
        let filter = ReindexFilter {
            case_id: body.case_id,
            below_extractor_version: body.outdated.unwrap_or(false).then_some(EXTRACTOR_VERSION),
            after: body.cursor.map(EvidenceId),
            limit: page_limit(body.limit, 100)?,
        };
        let batch = state.service.reindex_many(caller, &filter, Some(&request_id.0.0)).await?;
        tracing::info!(queued = batch.queued.len(), skipped = batch.skipped.len(), "bulk reindex batch");
        Ok(Json(ReindexBatchView {
            queued: batch.queued.into_iter().map(|id| id.0).collect(),
            skipped: batch.skipped.into_iter().map(|id| id.0).collect(),
            next_cursor: batch.next.map(|id| id.0),
            extractor_version: EXTRACTOR_VERSION,
        }))
    }

    /// Full-text search over extracted text, filenames, tags and descriptions, per evidence.
    ///
    /// `q`: `invoice 2024`, `"exact phrase"`, `glob*`, `breach or leak`, `-draft`. Every word,
    /// phrase and prefix must occur somewhere in an evidence (its text or its metadata), and an
    /// excluded one anywhere in it leaves it out. A query of only stop words or only exclusions
    /// answers 422 `query_empty`.
    #[oai(path = "/search", method = "get", tag = "Tag::Search", operation_id = "search")]
    #[allow(clippy::too_many_arguments, reason = "each query parameter of the operation is an argument")]
    async fn search(
        &self,
        state: Data<&AppState>,
        key: ApiKey,
        /// Words, "phrases", prefix*, or, -exclusions; 1 to 1000 characters, not only spaces.
        #[oai(validator(min_length = 1, max_length = 1000, pattern = r"^[^\u0000]*\S[^\u0000]*$"))]
        q: Query<String>,
        #[oai(validator(min_length = 1, max_length = 200, pattern = r"^[^\u0000]*$"))] case_id: Query<Option<String>>,
        #[oai(validator(min_length = 1, max_length = 100, pattern = r"^[^\u0000]*$"))] tag: Query<Option<String>>,
        /// Declared content type or sniffed media type, e.g. application/pdf.
        #[oai(name = "type", validator(min_length = 1, max_length = 255, pattern = r"^[^\u0000]*$"))]
        media_type: Query<Option<String>>,
        /// 1 to 200; default 20.
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page (of the same query).
        #[oai(validator(
            pattern = "^[0-9]{1,10}_[0-9]{1,18}_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
        ))]
        cursor: Query<Option<String>>,
    ) -> Result<Json<SearchResults>, ApiError> {
        let caller = key.caller();
        let query = q.0.trim().to_owned();
        if query.is_empty() || query.len() > 1000 {
            return Err(ApiError::unprocessable("invalid_request", "q must be 1 to 1000 characters"));
        }
        let limit = page_limit(limit.0, 20)?;
        let search = SearchQuery {
            q: query.clone(),
            case_id: case_id.0,
            tag: tag.0,
            media_type: media_type.0,
            after: cursor.0.as_deref().map(decode_search_cursor).transpose()?,
            limit: limit + 1,
        };
        let SearchPage { mut hits, total, total_exact, facets } = state.service.search(caller, &search).await?;
        let next_cursor = if hits.len() as i64 > limit {
            hits.truncate(limit as usize);
            hits.last().map(|h| format!("{}_{}_{}", h.rank.to_bits(), h.created_at.timestamp_micros(), h.id))
        } else {
            None
        };
        let hits = hits.into_iter().map(Into::into).collect();
        Ok(Json(SearchResults { query, total, total_exact, hits, next_cursor, facets: facets.into() }))
    }
}
