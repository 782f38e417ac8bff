//! The custody log over HTTP: one evidence's entries, and the verification of the caller's
//! tenant's whole chain. The entries carry every field their hash covers, so anyone can
//! recompute it (ARCHITECTURE.md, "Custody", gives the encoding).

use chrono::{DateTime, Utc};
use evidence::EvidenceId;
use evidence::custody::{Entry, Verdict};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};
use uuid::Uuid;

use crate::AppState;
use crate::auth::ApiKey;
use crate::error::ApiError;

#[derive(Tags)]
enum Tag {
    /// The hash-chained record of who did what to each evidence.
    Custody,
}

/// One event of an evidence, as recorded in the same transaction as the change.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CustodyEntryView {
    /// Position in the tenant's chain, from 1, without gaps; absent for the moment between the
    /// commit of the entry and its seal into the chain (as are `at`, `prev_hash` and `hash`).
    pub seq: Option<i64>,
    pub evidence_id: Option<Uuid>,
    /// created, upload_completed, verified, indexed, failed, viewed, download_url_issued, reindexed.
    pub event: String,
    /// `api_key`, `worker` or `operator`.
    pub actor_kind: String,
    /// The API key's id, the ingest job's id, or the database role.
    pub actor_id: String,
    pub actor_name: String,
    pub request_id: Option<String>,
    /// Database time at which the entry took its place in the chain.
    pub at: Option<DateTime<Utc>>,
    /// The event's facts: a JSON object, as the exact text the hash covers.
    pub details: String,
    /// The hash of the entry before it in the chain (64 zeros for the first).
    pub prev_hash: Option<String>,
    /// SHA-256 over this entry's encoding, which starts with `prev_hash`.
    pub hash: Option<String>,
}

impl From<Entry> for CustodyEntryView {
    fn from(e: Entry) -> Self {
        Self {
            seq: e.seq,
            evidence_id: e.evidence_id,
            event: e.event,
            actor_kind: e.actor_kind,
            actor_id: e.actor_id,
            actor_name: e.actor_name,
            request_id: e.request_id,
            at: e.at,
            details: e.details,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

#[derive(Debug, Object)]
pub struct CustodyLog {
    pub items: Vec<CustodyEntryView>,
}

/// What recomputing the chain found: intact (with its head), or the first broken link.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ChainVerification {
    pub intact: bool,
    /// Entries checked (when intact).
    pub count: Option<i64>,
    /// The hash of the last entry (when intact): keep it to check later that nothing before it changed.
    pub head: Option<String>,
    /// Entries committed but not yet sealed into the chain (when intact); usually 0 within a second.
    pub pending: Option<i64>,
    /// The position of the first entry that does not follow (when broken).
    pub broken_at: Option<i64>,
    /// What did not hold there: `hash`, `prev_hash`, `seq` or `head`.
    pub field: Option<String>,
    pub expected: Option<String>,
    pub found: Option<String>,
}

impl From<Verdict> for ChainVerification {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Intact { count, head, pending } => Self {
                intact: true,
                count: Some(count),
                head: Some(head),
                pending: Some(pending),
                broken_at: None,
                field: None,
                expected: None,
                found: None,
            },
            Verdict::Broken(b) => Self {
                intact: false,
                count: None,
                head: None,
                pending: None,
                broken_at: Some(b.seq),
                field: Some(b.field.to_owned()),
                expected: Some(b.expected),
                found: Some(b.found),
            },
        }
    }
}

pub struct CustodyApi;

#[OpenApi(prefix_path = "/v1")]
impl CustodyApi {
    /// The custody entries of one evidence, oldest first (admin, viewer and auditor keys).
    #[oai(path = "/evidence/:id/custody", method = "get", tag = "Tag::Custody", operation_id = "evidence_custody")]
    async fn entries(&self, state: Data<&AppState>, key: ApiKey, id: Path<Uuid>) -> Result<Json<CustodyLog>, ApiError> {
        let caller = key.caller();
        let entries = state.service.custody(caller, EvidenceId(id.0)).await?;
        Ok(Json(CustodyLog { items: entries.into_iter().map(Into::into).collect() }))
    }

    /// Recompute the caller's tenant's whole custody chain (admin and auditor keys).
    ///
    /// Answers 200 either way: `intact` with the count and head hash, or the first broken link.
    #[oai(path = "/custody/verify", method = "get", tag = "Tag::Custody", operation_id = "verify_custody")]
    async fn verify(&self, state: Data<&AppState>, key: ApiKey) -> Result<Json<ChainVerification>, ApiError> {
        let caller = key.caller();
        let verdict = state.service.verify_custody(caller).await?;
        if let Verdict::Broken(b) = &verdict {
            tracing::error!(tenant = %caller.tenant, seq = b.seq, field = b.field, "custody chain broken");
        }
        Ok(Json(verdict.into()))
    }
}
