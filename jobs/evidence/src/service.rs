//! What the API calls: authentication, uploads (presign → complete), reading, listing,
//! download, reindex, search and key management, each one function over the store, the object
//! store and the queue. The API never writes SQL and never reads the job table: the job an
//! evidence points at comes from here.
//!
//! Every operation takes the [`Caller`] and checks its role first, then works inside the
//! caller's tenant only (see `store` for the two walls). Evidence outside a key's cases is
//! refused (403); another tenant's evidence does not exist (404).

use std::sync::Arc;
use std::time::Duration;

use queue::{JobState, JobSummary, JobTable, NewJob};
use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;

use crate::access::{Action, Caller};
use crate::custody::{self, Actor, Event, NewEntry};
use crate::error::EvidenceError;
use crate::ingest::IngestEvidence;
use crate::keys::{self, ApiKey, IssuedKey, KnownKeys, NewKey};
use crate::model::{
    Evidence, EvidenceId, EvidenceStatus, ListFilter, NewEvidence, ReindexBatch, ReindexFilter, SearchPage,
    SearchQuery, TenantId,
};
use crate::query::{self, ClauseQuery};
use crate::storage::{PresignedPut, Storage};
use crate::store;

/// What a request made with a revoked key is told.
const KEY_REVOKED: &str = "this API key was revoked";

/// How the client sends the bytes: one PUT, or (above the part size) one PUT per part, in
/// order of part number, then `complete_multipart` with the ETag each PUT answered.
#[derive(Debug)]
pub enum UploadPlan {
    Single(PresignedPut),
    Parts { part_bytes: u64, parts: Vec<PresignedPut> },
}

/// Evidence a complete call found: still awaiting its upload, or past that.
enum Upload {
    Awaiting(Evidence),
    Done(Evidence),
}

/// A created (or, for a repeated Idempotency-Key, the existing) evidence row and its upload.
#[derive(Debug)]
pub struct Created {
    pub evidence: Evidence,
    pub upload: Option<UploadPlan>,
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
    /// The upload window each new evidence gets (`UPLOAD_EXPIRY_SECS`); `None`: no expiry.
    pub upload_expiry: Option<Duration>,
    /// Uploads larger than this are made in parts of about this size (`UPLOAD_PART_BYTES`).
    pub upload_part_bytes: u64,
    /// Attempts given to each ingest job.
    pub max_attempts: i32,
    pub searches: SearchLimits,
    /// Keys this process checked recently.
    pub known_keys: KnownKeys,
    /// Whose admin keys may pause, resume and list queues, and reach every tenant's jobs
    /// (`API_OPERATOR_TENANT`); `None`: no one's, over the API.
    pub operator_tenant: Option<TenantId>,
}

/// How much of the database searches may take: at most `concurrency` at once per process (the
/// rest of the pool stays free for uploads, reads and `/ready`), each cancelled by the server
/// after `timeout`.
#[derive(Debug, Clone)]
pub struct SearchLimits {
    permits: Arc<tokio::sync::Semaphore>,
    pub timeout: Duration,
    /// Hits a search ranks, counts and facets at most (`API_SEARCH_MAX_HITS`).
    pub max_hits: u32,
}

impl SearchLimits {
    pub fn new(concurrency: usize, timeout: Duration, max_hits: u32) -> Self {
        Self { permits: Arc::new(tokio::sync::Semaphore::new(concurrency)), timeout, max_hits }
    }
}

impl Default for SearchLimits {
    fn default() -> Self {
        Self::new(4, Duration::from_secs(5), 500)
    }
}

impl Service {
    /// Validate, insert and presign. A repeated Idempotency-Key with the same request returns the
    /// same evidence (with a fresh URL while the upload is still awaited).
    pub async fn create(&self, caller: &Caller, mut new: NewEvidence) -> Result<Created, EvidenceError> {
        caller.require(Action::Upload)?;
        new.validate(self.max_object_bytes)?;
        new.content_type = new.canonical_content_type();
        caller.require_case(new.case_id.as_deref().map(str::trim))?;
        let mut tx = self.begin(caller).await?;
        let (evidence, created) = store::insert(&mut tx, &caller.tenant, &new, self.upload_expiry).await?;
        if created {
            let c = &evidence.custody;
            let details = json!({
                "filename": evidence.filename, "content_type": evidence.content_type,
                "size_bytes": evidence.size_bytes, "declared_sha256": evidence.declared_sha256,
                "case_id": evidence.case_id, "tags": evidence.tags, "custodian": c.custodian,
                "collected_at": c.collected_at, "source": c.source,
            });
            record(&mut tx, caller, evidence.id, Event::Created, new.request_id.as_deref(), details).await?;
        }
        tx.commit().await?;
        if !created && !evidence.same_request(&new) {
            return Err(EvidenceError::IdempotencyMismatch(evidence.id));
        }
        let evidence = self.with_job(evidence).await?;
        let upload = match (evidence.status, evidence.upload_expires_at) {
            (EvidenceStatus::Expired, at) => {
                return Err(EvidenceError::UploadExpired { id: evidence.id, at: at.unwrap_or(evidence.updated_at) });
            }
            (EvidenceStatus::AwaitingUpload, window) => {
                // No URL outlives the upload window.
                let left = window.map(|at| (at - chrono::Utc::now()).to_std().unwrap_or_default());
                if let (Some(at), Some(left)) = (window, left)
                    && left < Duration::from_secs(1)
                {
                    return Err(EvidenceError::UploadExpired { id: evidence.id, at });
                }
                Some(self.presign_upload(caller, &evidence, left).await?)
            }
            _ => None,
        };
        Ok(Created { evidence, upload, created })
    }

    /// The URLs for the upload of evidence awaiting it, none valid past `left`: one PUT, or, above
    /// the part size, a multipart upload (started here the first time, its id kept on the row so
    /// a repeated create hands out URLs for the same upload).
    async fn presign_upload(
        &self,
        caller: &Caller,
        evidence: &Evidence,
        left: Option<Duration>,
    ) -> Result<UploadPlan, EvidenceError> {
        let (key, size) = (&evidence.object_key, evidence.size_bytes as u64);
        let (upload_id, part_bytes) = match (&evidence.upload_id, evidence.upload_part_bytes) {
            (Some(upload_id), Some(part_bytes)) => (upload_id.clone(), part_bytes as u64),
            _ if size <= self.upload_part_bytes => {
                let (ct, sha) = (&evidence.content_type, evidence.declared_sha256.as_deref());
                return Ok(UploadPlan::Single(self.storage.presign_put(key, ct, size, sha, left).await?));
            }
            _ => self.start_multipart(caller, evidence).await?,
        };
        let mut parts = Vec::new();
        for (number, len) in crate::storage::parts_of(size, part_bytes) {
            parts.push(self.storage.presign_part(key, &upload_id, number, len, left).await?);
        }
        Ok(UploadPlan::Parts { part_bytes, parts })
    }

    /// Start the multipart upload of evidence and keep its id on the row; when a concurrent
    /// create kept another first, abort this one and use that.
    async fn start_multipart(&self, caller: &Caller, evidence: &Evidence) -> Result<(String, u64), EvidenceError> {
        let part_bytes = crate::storage::part_size_for(evidence.size_bytes as u64, self.upload_part_bytes);
        let started = self.storage.start_multipart(&evidence.object_key, &evidence.content_type).await?;
        let mut tx = self.begin(caller).await?;
        let kept = store::set_multipart(&mut tx, &caller.tenant, evidence.id, &started, part_bytes).await?;
        tx.commit().await?;
        if kept.as_deref() == Some(started.as_str()) {
            return Ok((started, part_bytes));
        }
        self.storage.abort_multipart(&evidence.object_key, &started).await?;
        let now = self.row(caller, evidence.id).await?;
        match (now.upload_id, now.upload_part_bytes, now.status) {
            (Some(upload_id), Some(part_bytes), EvidenceStatus::AwaitingUpload) => Ok((upload_id, part_bytes as u64)),
            (_, _, status) => {
                Err(EvidenceError::WrongStatus { id: evidence.id, status, action: "upload", needs: "awaiting_upload" })
            }
        }
    }

    /// The client says the bytes are uploaded with one PUT: check the object, then in one
    /// transaction mark the evidence queued and enqueue its ingest job. Repeating it is a no-op
    /// that returns the state. The flag is true when this call queued it.
    pub async fn complete(
        &self,
        caller: &Caller,
        id: EvidenceId,
        request_id: Option<&str>,
    ) -> Result<(Evidence, bool), EvidenceError> {
        let evidence = match self.awaiting_upload(caller, id).await? {
            Upload::Awaiting(evidence) => evidence,
            Upload::Done(evidence) => return Ok((self.with_job(evidence).await?, false)),
        };
        if evidence.upload_id.is_some() {
            return Err(EvidenceError::PartsRequired { id });
        }
        self.finish_upload(caller, evidence, request_id).await
    }

    /// The client says every part is uploaded: `parts` are the part numbers (1, 2, … in order,
    /// as many as the upload was given URLs for) with the ETag each PUT answered. The store joins
    /// them into the object, then it goes on as [`Service::complete`].
    pub async fn complete_multipart(
        &self,
        caller: &Caller,
        id: EvidenceId,
        parts: &[(u32, String)],
        request_id: Option<&str>,
    ) -> Result<(Evidence, bool), EvidenceError> {
        let evidence = match self.awaiting_upload(caller, id).await? {
            Upload::Awaiting(evidence) => evidence,
            Upload::Done(evidence) => return Ok((self.with_job(evidence).await?, false)),
        };
        let (Some(upload_id), Some(part_bytes)) = (&evidence.upload_id, evidence.upload_part_bytes) else {
            return Err(EvidenceError::NotMultipart { id });
        };
        let expected = crate::storage::parts_of(evidence.size_bytes as u64, part_bytes as u64).count();
        if parts.len() != expected || parts.iter().zip(1u32..).any(|((number, _), n)| *number != n) {
            return Err(EvidenceError::PartsRejected(format!(
                "evidence {id} is uploaded in {expected} parts: name parts 1 to {expected}, each once, in order"
            )));
        }
        if let Err(e) = self.storage.complete_multipart(&evidence.object_key, upload_id, parts).await {
            // An earlier call may have joined the parts already (its answer lost or timed out):
            // then the object is there with the declared size, and the upload id is gone.
            let joined = self.storage.head(&evidence.object_key).await? == Some(evidence.size_bytes as u64);
            match e {
                _ if joined => {}
                crate::storage::StorageError::NotFound => return Err(EvidenceError::UploadMissing { id }),
                crate::storage::StorageError::Refused(detail) => {
                    return Err(EvidenceError::PartsRejected(format!("the object store refused the parts: {detail}")));
                }
                e => return Err(e.into()),
            }
        }
        self.finish_upload(caller, evidence, request_id).await
    }

    /// The evidence, and whether it still awaits its upload or is past that (completed earlier);
    /// `UploadExpired` once its window closed.
    async fn awaiting_upload(&self, caller: &Caller, id: EvidenceId) -> Result<Upload, EvidenceError> {
        caller.require(Action::Upload)?;
        let evidence = self.row(caller, id).await?;
        match evidence.status {
            EvidenceStatus::Expired => {
                Err(EvidenceError::UploadExpired { id, at: evidence.upload_expires_at.unwrap_or(evidence.updated_at) })
            }
            EvidenceStatus::AwaitingUpload => Ok(Upload::Awaiting(evidence)),
            _ => Ok(Upload::Done(evidence)),
        }
    }

    /// Check the uploaded object is there with the declared size, then queue the evidence.
    async fn finish_upload(
        &self,
        caller: &Caller,
        evidence: Evidence,
        request_id: Option<&str>,
    ) -> Result<(Evidence, bool), EvidenceError> {
        let id = evidence.id;
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
        match self.enqueue_ingest(caller, &evidence, EvidenceStatus::AwaitingUpload, request_id).await? {
            Some(queued) => Ok((queued, true)),
            // Another complete won the race: answer with the state it left.
            None => Ok((self.with_job(self.row(caller, id).await?).await?, false)),
        }
    }

    /// One evidence with its current job; the read is recorded in custody (`viewed`).
    pub async fn get(
        &self,
        caller: &Caller,
        id: EvidenceId,
        request_id: Option<&str>,
    ) -> Result<Evidence, EvidenceError> {
        caller.require(Action::ReadMetadata)?;
        let mut tx = self.begin(caller).await?;
        let evidence = row_in(&mut tx, caller, id).await?;
        record(&mut tx, caller, id, Event::Viewed, request_id, json!({})).await?;
        tx.commit().await?;
        self.with_job(evidence).await
    }

    /// One evidence's custody entries, oldest first.
    pub async fn custody(&self, caller: &Caller, id: EvidenceId) -> Result<Vec<custody::Entry>, EvidenceError> {
        caller.require(Action::ReadCustody)?;
        let mut tx = self.begin(caller).await?;
        row_in(&mut tx, caller, id).await?;
        let entries = store::custody_of(&mut *tx, &caller.tenant, id).await?;
        store::end_read(tx);
        Ok(entries)
    }

    /// Recompute the caller's tenant's whole custody chain.
    pub async fn verify_custody(&self, caller: &Caller) -> Result<custody::Verdict, EvidenceError> {
        caller.require(Action::VerifyCustody)?;
        let mut tx = self.begin(caller).await?;
        let verdict = store::verify_custody(&mut tx, &caller.tenant).await?;
        store::end_read(tx);
        Ok(verdict)
    }

    /// One evidence of the caller's tenant and cases, without its job, for operations that only
    /// look at its own columns.
    async fn row(&self, caller: &Caller, id: EvidenceId) -> Result<Evidence, EvidenceError> {
        let mut tx = self.begin(caller).await?;
        let evidence = row_in(&mut tx, caller, id).await?;
        store::end_read(tx);
        Ok(evidence)
    }

    /// One page of evidence, newest first, each with its current job.
    pub async fn list(&self, caller: &Caller, filter: &ListFilter) -> Result<Vec<Evidence>, EvidenceError> {
        caller.require(Action::ReadMetadata)?;
        let cases = caller.case_scope(filter.case_id.as_deref())?;
        let mut tx = self.begin(caller).await?;
        let mut items = store::list(&mut *tx, &caller.tenant, cases.as_deref(), filter).await?;
        store::end_read(tx);
        let ids: Vec<_> = items.iter().filter_map(|e| e.job_id).collect();
        let jobs = queue::store::summaries(&self.jobs, &self.pool, &ids).await?;
        for e in &mut items {
            e.job = e.job_id.and_then(|id| jobs.iter().find(|j| j.id == id).cloned());
        }
        Ok(items)
    }

    /// Ranked full-text search over indexed evidence, within the search limits: beyond them, or
    /// past the timeout, `SearchBusy` (the caller should retry shortly).
    pub async fn search(&self, caller: &Caller, query: &SearchQuery) -> Result<SearchPage, EvidenceError> {
        caller.require(Action::Search)?;
        let cases = caller.case_scope(query.case_id.as_deref())?;
        let Ok(_permit) = self.searches.permits.try_acquire() else {
            metrics::counter!("evidence_searches_refused_total", "reason" => "busy").increment(1);
            return Err(EvidenceError::SearchBusy);
        };
        let mut tx = self.begin(caller).await?;
        let clauses = searchable(&mut tx, &query.q).await?;
        match store::search(
            &mut tx,
            &caller.tenant,
            cases.as_deref(),
            query,
            &clauses,
            self.searches.max_hits,
            self.searches.timeout,
        )
        .await
        {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(store::QUERY_CANCELED) => {
                metrics::counter!("evidence_searches_refused_total", "reason" => "timeout").increment(1);
                Err(EvidenceError::SearchBusy)
            }
            hits => {
                store::end_read(tx);
                Ok(hits?)
            }
        }
    }

    /// A presigned GET for evidence whose bytes were verified (`indexed`), with how long it is
    /// valid. Earlier the object may be missing or not yet checked against its checksum.
    pub async fn download(
        &self,
        caller: &Caller,
        id: EvidenceId,
        request_id: Option<&str>,
    ) -> Result<DownloadUrl, EvidenceError> {
        caller.require(Action::Download)?;
        let mut tx = self.begin(caller).await?;
        let evidence = row_in(&mut tx, caller, id).await?;
        if evidence.status != EvidenceStatus::Indexed {
            return Err(EvidenceError::WrongStatus {
                id,
                status: evidence.status,
                action: "download",
                needs: "indexed (its bytes stored and verified)",
            });
        }
        // Indexed evidence always has its stored key (a constraint); the upload key is never served.
        let Some(key) = &evidence.stored_key else {
            return Err(EvidenceError::Invalid(format!("evidence {id} has no stored bytes")));
        };
        let (url, expires_in) = self.storage.presign_get(key, &evidence.filename).await?;
        let details = json!({"expires_in_seconds": expires_in.as_secs()});
        record(&mut tx, caller, id, Event::DownloadUrlIssued, request_id, details).await?;
        tx.commit().await?;
        Ok(DownloadUrl { evidence, url, expires_in })
    }

    /// Queue an indexed or failed evidence again (after fixing the cause of an `index_error`, or
    /// to re-extract). Its content row is kept; the job re-checks the object.
    pub async fn reindex(
        &self,
        caller: &Caller,
        id: EvidenceId,
        request_id: Option<&str>,
    ) -> Result<Evidence, EvidenceError> {
        caller.require(Action::Reindex)?;
        let evidence = self.row(caller, id).await?;
        let needs = "indexed or index_error";
        let from = match evidence.status {
            EvidenceStatus::Indexed | EvidenceStatus::IndexError => evidence.status,
            status => return Err(EvidenceError::WrongStatus { id, status, action: "reindex", needs }),
        };
        match self.enqueue_ingest(caller, &evidence, from, request_id).await? {
            Some(queued) => Ok(queued),
            // Someone else moved it first; report what it is now.
            None => Err(EvidenceError::WrongStatus {
                id,
                status: self.row(caller, id).await?.status,
                action: "reindex",
                needs,
            }),
        }
    }

    /// Queue again, each as [`Service::reindex`] does, one batch of the evidence `filter` picks
    /// (at most `filter.limit`, by id); the caller paces the batches (`evidence reindex` does,
    /// at a rate it is given), so a large reindex goes through the queue at a bounded rate.
    pub async fn reindex_many(
        &self,
        caller: &Caller,
        filter: &ReindexFilter,
        request_id: Option<&str>,
    ) -> Result<ReindexBatch, EvidenceError> {
        caller.require(Action::Reindex)?;
        let cases = caller.case_scope(filter.case_id.as_deref())?;
        let mut tx = self.begin(caller).await?;
        let candidates = store::reindex_candidates(&mut *tx, &caller.tenant, cases.as_deref(), filter).await?;
        store::end_read(tx);
        let next = (candidates.len() as i64 == filter.limit).then(|| candidates.last().map(|e| e.id)).flatten();
        let mut batch = ReindexBatch { queued: Vec::new(), skipped: Vec::new(), next };
        for evidence in &candidates {
            match self.enqueue_ingest(caller, evidence, evidence.status, request_id).await {
                Ok(Some(_)) => batch.queued.push(evidence.id),
                Ok(None) | Err(EvidenceError::JobActive(_)) => batch.skipped.push(evidence.id),
                Err(e) => return Err(e),
            }
        }
        Ok(batch)
    }

    /// The caller an `Authorization: Bearer` key stands for; `Unauthenticated` when the key is
    /// not shaped like one, unknown, or revoked. A key this process checked in the last minute
    /// is not looked up again: each transaction of the request checks it is still in force
    /// ([`Service::begin`]), so a revoke holds at once all the same.
    pub async fn authenticate(&self, key: &str) -> Result<Caller, EvidenceError> {
        let (prefix, hash) = keys::parse(key.trim())
            .ok_or(EvidenceError::Unauthenticated("the API key is malformed: keys look like evk_<12 hex>_<64 hex>"))?;
        if let Some(caller) = self.known_keys.get(&hash) {
            return Ok(caller);
        }
        match store::authenticate(&self.pool, prefix, &hash).await? {
            None => Err(EvidenceError::Unauthenticated("unknown API key")),
            Some(k) if k.revoked => Err(EvidenceError::Unauthenticated(KEY_REVOKED)),
            Some(k) => {
                let caller = Caller {
                    key_id: k.key_id,
                    key_prefix: prefix.to_owned(),
                    key_name: k.name,
                    tenant: TenantId::new(&k.tenant_id)?,
                    role: k.role,
                    cases: k.case_ids,
                };
                self.known_keys.remember(hash, &caller);
                Ok(caller)
            }
        }
    }

    /// A transaction of `caller`'s request: in its tenant, and refused (`Unauthenticated`) when
    /// its key was revoked since it was checked.
    pub(crate) async fn begin(&self, caller: &Caller) -> Result<Transaction<'static, Postgres>, EvidenceError> {
        store::begin_as_key(&self.pool, caller.key_id).await.map_err(|e| match e {
            sqlx::Error::Database(db) if db.code().as_deref() == Some(store::KEY_REVOKED) => {
                EvidenceError::Unauthenticated(KEY_REVOKED)
            }
            e => e.into(),
        })
    }

    /// A new key in the caller's tenant. An admin key limited to some cases makes keys limited
    /// to (some of) the same cases only.
    pub async fn create_key(&self, caller: &Caller, new: &NewKey) -> Result<IssuedKey, EvidenceError> {
        caller.require(Action::ManageKeys)?;
        new.validate()?;
        if let Some(scope) = &caller.cases {
            let within = new.cases.as_ref().is_some_and(|cases| cases.iter().all(|c| scope.contains(c)));
            if !within {
                return Err(EvidenceError::Forbidden {
                    code: "case_out_of_scope",
                    message: format!("this key is limited to cases {}: so are the keys it makes", scope.join(", ")),
                });
            }
        }
        let mut tx = self.begin(caller).await?;
        let issued = store::insert_key(&mut tx, &caller.tenant, new, Some(caller.key_id)).await?;
        tx.commit().await?;
        Ok(issued)
    }

    /// The keys of the caller's tenant (those within its cases, for a key limited to some).
    pub async fn list_keys(&self, caller: &Caller) -> Result<Vec<ApiKey>, EvidenceError> {
        caller.require(Action::ManageKeys)?;
        let mut tx = self.begin(caller).await?;
        let keys = store::list_keys(&mut *tx, key_scope(caller)).await?;
        tx.commit().await?;
        Ok(keys)
    }

    /// Revoke a key of the caller's tenant by its prefix; from then on it is refused. Not the
    /// caller's own key: a tenant's last admin key cannot lock the tenant out by mistake.
    pub async fn revoke_key(&self, caller: &Caller, prefix: &str) -> Result<ApiKey, EvidenceError> {
        caller.require(Action::ManageKeys)?;
        if prefix == caller.key_prefix {
            return Err(EvidenceError::OwnKey);
        }
        let mut tx = self.begin(caller).await?;
        let key = store::revoke_key(&mut *tx, prefix, key_scope(caller)).await?;
        tx.commit().await?;
        key.ok_or_else(|| EvidenceError::KeyNotFound(prefix.to_owned()))
    }

    /// The database answers within 2 s (for `/ready`).
    pub async fn database_ready(&self) -> bool {
        matches!(tokio::time::timeout(Duration::from_secs(2), store::ping(&self.pool)).await, Ok(Ok(())))
    }

    /// `from → queued` and the ingest job, in one transaction; the queued evidence, or `None` when
    /// the row was not in `from`.
    async fn enqueue_ingest(
        &self,
        caller: &Caller,
        evidence: &Evidence,
        from: EvidenceStatus,
        request_id: Option<&str>,
    ) -> Result<Option<Evidence>, EvidenceError> {
        let id = evidence.id;
        let object = store::IngestObject::of(evidence);
        let tenant = &caller.tenant;
        let job =
            NewJob::from_args(&IngestEvidence { evidence_id: id.0, tenant: tenant.clone(), object: Some(object) })
                .map_err(|e| EvidenceError::Invalid(e.to_string()))?
                .unique_key(id.0.to_string())
                .max_attempts(self.max_attempts)
                .correlation_id(request_id.map(str::to_owned));
        let mut tx = self.begin(caller).await?;
        // The job first: its unique key makes a concurrent request for the same evidence wait here
        // until this transaction ends, then find the job taken.
        let Some(job_id) = queue::store::enqueue(&self.jobs, &mut *tx, &job).await? else {
            drop(tx);
            // An ingest job for this evidence is active. When the evidence points at another job
            // than when it was read, another request queued it first (its job may even be done
            // already, and the evidence back in `from`); otherwise the job was made by hand, and
            // the evidence is refused rather than queued without a job of its own.
            let mut read = self.begin(caller).await?;
            let now = store::get(&mut *read, tenant, id).await?;
            store::end_read(read);
            return match now {
                Some(now) if now.status == from && now.job_id == evidence.job_id => Err(EvidenceError::JobActive(id)),
                _ => Ok(None),
            };
        };
        // The status guard; when it fails, dropping the transaction takes the job back.
        let Some(mut queued) = store::mark_queued(&mut tx, tenant, id, from, job_id, request_id).await? else {
            return Ok(None);
        };
        let (event, details) = match from {
            EvidenceStatus::AwaitingUpload => {
                (Event::UploadCompleted, json!({"size_bytes": evidence.size_bytes, "job_id": job_id.0}))
            }
            _ => (Event::Reindexed, json!({"from": from.as_str(), "job_id": job_id.0})),
        };
        record(&mut tx, caller, id, event, request_id, details).await?;
        // The job as it was just inserted: its run_at is the transaction's now(), as queued_at is.
        queued.job = Some(JobSummary {
            id: job_id,
            state: JobState::Available,
            attempt: 0,
            max_attempts: self.max_attempts,
            run_at: queued.queued_at.unwrap_or(queued.updated_at),
            last_error: None,
        });
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

/// The clauses of `q` as Postgres matches them: terms that reduce to nothing (stop words,
/// punctuation) are dropped, and so are clauses left without terms. A query with no required
/// clause left is refused, naming what was dropped.
async fn searchable(conn: &mut sqlx::PgConnection, q: &str) -> Result<Vec<ClauseQuery>, EvidenceError> {
    let parsed = query::parse(q);
    let mut tsqueries = store::term_tsqueries(conn, &parsed).await?.into_iter();
    let mut dropped = Vec::new();
    let mut clauses = Vec::new();
    for clause in parsed {
        let mut kept = Vec::new();
        for term in &clause.any_of {
            match tsqueries.next().filter(|q| !q.is_empty()) {
                Some(tsquery) => kept.push(tsquery),
                None => dropped.push(format!("{:?}", term.text())),
            }
        }
        if !kept.is_empty() {
            clauses.push(ClauseQuery { excluded: clause.excluded, tsquery: query::any_of(&kept) });
        }
    }
    if clauses.iter().any(|c| !c.excluded) {
        return Ok(clauses);
    }
    Err(EvidenceError::QueryEmpty(if !clauses.is_empty() {
        "the query only excludes (-word): name at least one word or phrase to find".to_owned()
    } else if dropped.is_empty() {
        "the query has no words to search for".to_owned()
    } else {
        format!(
            "the query has nothing to search for: {}: words this common, and punctuation, are not indexed",
            dropped.join(", ")
        )
    }))
}

/// One evidence of the caller's tenant (else `NotFound`) and cases (else `Forbidden`), read in `conn`.
async fn row_in(conn: &mut sqlx::PgConnection, caller: &Caller, id: EvidenceId) -> Result<Evidence, EvidenceError> {
    let evidence = store::get(&mut *conn, &caller.tenant, id).await?.ok_or(EvidenceError::NotFound(id))?;
    caller.require_case(evidence.case_id.as_deref())?;
    Ok(evidence)
}

/// Append a custody entry for `caller`'s action on `evidence`, in the transaction of the change.
async fn record(
    conn: &mut sqlx::PgConnection,
    caller: &Caller,
    evidence: EvidenceId,
    event: Event,
    request_id: Option<&str>,
    details: serde_json::Value,
) -> Result<(), EvidenceError> {
    let actor = Actor::key(caller);
    let entry = NewEntry { evidence: evidence.0, event, actor: &actor, request_id, details };
    store::append_custody(conn, &caller.tenant, &entry).await?;
    Ok(())
}

/// The keys a caller's key management reaches: its tenant's, within its cases when it has some.
fn key_scope(caller: &Caller) -> store::KeyScope<'_> {
    store::KeyScope { tenant: Some(&caller.tenant), within: caller.cases.as_deref() }
}

/// Seal committed entries into their chains until `stop`: at once while there are more than a
/// batch, else every `every`. Each worker runs one; while one seals, the others' calls return at
/// once (`custody_seal` in the custody links migration).
pub async fn run_sealer(pool: PgPool, every: Duration, stop: CancellationToken) {
    const BATCH: i32 = 1000;
    loop {
        let wait = match store::seal_custody(&pool, BATCH).await {
            Ok(sealed) if sealed >= BATCH as i64 => Duration::ZERO,
            Ok(_) => every,
            Err(e) => {
                tracing::warn!(error = %e, "sealing custody entries failed; retrying");
                every * 20
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Keep the evidence tables' statistics current where autovacuum does not: every `every`,
/// analyze those that changed by a tenth since their last analyze, so that no connection keeps
/// a plan made while they were empty (`analyze_stale_tables` in …0007_analyze_stale).
pub async fn keep_statistics(pool: PgPool, every: Duration, stop: CancellationToken) {
    repeat(every, stop, || async {
        match store::analyze_stale_tables(&pool).await {
            Ok(tables) if tables.is_empty() => {}
            Ok(tables) => tracing::info!(?tables, "analyzed tables that had changed since their statistics"),
            Err(e) => tracing::warn!(error = %e, "analyzing the evidence tables failed"),
        }
    })
    .await
}

/// Run `task` every `every` (the first at once) until `stop`.
async fn repeat<F, Fut>(every: Duration, stop: CancellationToken, mut task: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        task().await;
    }
}

/// Publish `evidence_by_status{status}` and `evidence_custody_unsealed` every `every` until
/// `stop`; one process's view of a global count (aggregate with max() across processes). When
/// the same transaction holds custody entries back at two reports in a row (it has been open for
/// at least `every`), say so at warn level with its id: sealing waits for it
/// (runbooks/custody.md). Entries held for a moment by transactions that end are normal.
pub async fn report_status_counts(pool: PgPool, every: Duration, stop: CancellationToken) {
    let held_by_before = std::sync::Mutex::new(None::<String>);
    repeat(every, stop, || {
        let (pool, held_by_before) = (&pool, &held_by_before);
        async move {
            match store::status_counts(pool).await {
                Ok(counts) => {
                    for status in EvidenceStatus::ALL {
                        let n = counts.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
                        metrics::gauge!("evidence_by_status", "status" => status.as_str()).set(n as f64);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "evidence status counts failed"),
            }
            match store::custody_unsealed(pool).await {
                Ok(unsealed) => {
                    metrics::gauge!("evidence_custody_unsealed").set(unsealed.waiting as f64);
                    let before = std::mem::replace(
                        &mut *held_by_before.lock().unwrap_or_else(|e| e.into_inner()),
                        unsealed.held_by.clone(),
                    );
                    if let Some(transaction) = unsealed.held_by.filter(|now| before.as_ref() == Some(now)) {
                        tracing::warn!(
                            entries = unsealed.held,
                            transaction,
                            "custody entries wait for a transaction still open on the database server; \
                             sealing resumes once it ends"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "counting unsealed custody entries failed"),
            }
        }
    })
    .await
}
