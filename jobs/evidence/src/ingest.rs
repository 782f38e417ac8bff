//! The ingest job: stream the object to a staging file while hashing it, verify size and
//! checksum, extract text in a sandboxed child process (unless the content is already known),
//! and commit content, chunks and the evidence status in the job's fenced finishing transaction.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use queue::{
    DiscardInfo, Handler, JobArgs, JobContext, JobError, JobTable, KindOptions, NewJob, Registry, RetryPolicy,
};

use crate::config::IngestSettings;
use crate::custody::{Actor, Event, NewEntry};
use crate::extract::{EXTRACTOR_VERSION, Extracted, Failure, INDEX_CHUNKING, TextReason};
use crate::model::{EvidenceId, EvidenceStatus, TenantId};
use crate::storage::{self, Downloaded, Storage, StorageError};
use crate::store::{self, ContentSummary};

mod family;
mod uploads;

pub use uploads::{UploadDeleter, UploadsDeleted};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestEvidence {
    pub evidence_id: Uuid,
    /// The evidence's tenant: every statement of the job runs in it. Jobs enqueued before
    /// tenancy name none; their evidence belongs to `default`.
    #[serde(default = "tenant_before_tenancy")]
    pub tenant: TenantId,
    /// The object's facts, copied when the job is enqueued so the worker need not read the
    /// evidence row. Absent in jobs made by hand (runbooks/jobs-by-hand.md): then it is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<store::IngestObject>,
}

fn tenant_before_tenancy() -> TenantId {
    TenantId::new("default").expect("a valid tenant id")
}

impl JobArgs for IngestEvidence {
    const KIND: &'static str = "ingest_evidence";
}

#[derive(Debug, Clone)]
pub struct IngestHandler {
    pub pool: PgPool,
    pub storage: Arc<Storage>,
    pub settings: Arc<IngestSettings>,
    /// Where the ingest jobs of a container's members go, and how often they are tried.
    pub jobs: JobTable,
    pub max_attempts: i32,
    /// Deletes uploads once their bytes are stored at their content key.
    pub uploads: UploadDeleter,
}

/// A failed object-store call as a job error: an unreachable store is an outage (the attempt is
/// given back and the worker waits for the store), anything else is worth a counted retry.
pub(crate) fn storage_failure(context: String, e: StorageError) -> JobError {
    match e {
        StorageError::Unavailable(_) => JobError::unavailable(storage::OBJECT_STORE, format!("{context}: {e}")),
        _ => JobError::Retryable(format!("{context}: {e}")),
    }
}

/// The worker with its check of the object store: while jobs find the store unreachable the
/// worker claims nothing, and this tells it when the store answers again.
pub fn with_store_check(worker: queue::Worker, storage: Arc<Storage>) -> queue::Worker {
    worker.depends_on(storage::OBJECT_STORE, move || {
        let storage = storage.clone();
        async move { storage.check().await.map_err(|e| e.to_string()) }
    })
}

/// Register the ingest kind on a worker's registry.
pub fn register(registry: &mut Registry, handler: IngestHandler, retry: RetryPolicy) {
    let timeout = ingest_job_timeout(&handler.settings);
    registry.register(handler, KindOptions { retry, timeout, ..KindOptions::default() });
}

/// How long one ingest attempt may run: twice the extraction's limit, and ten minutes for
/// streaming, hashing, storing and indexing.
pub fn ingest_job_timeout(settings: &IngestSettings) -> std::time::Duration {
    settings.extract_timeout * 2 + std::time::Duration::from_secs(600)
}

impl Handler for IngestHandler {
    type Args = IngestEvidence;

    async fn run(&self, ctx: JobContext, args: IngestEvidence) -> Result<(), JobError> {
        let id = EvidenceId(args.evidence_id);
        let tenant = &args.tenant;
        let target = match args.object {
            Some(object) => object,
            None => match self.ingest_target(tenant, id).await? {
                None => return Err(JobError::permanent(format!("evidence {id} no longer exists"))),
                Some((status, _)) if status != EvidenceStatus::Queued => {
                    tracing::info!(evidence_id = %id, %status, "evidence is not queued; nothing to do");
                    return ctx.begin_finish().await?.commit().await;
                }
                Some((_, object)) => object,
            },
        };

        let staging = tempfile::NamedTempFile::new_in(&self.settings.tmp_dir).map_err(|e| {
            JobError::retryable(format!("cannot create a staging file in {}: {e}", self.settings.tmp_dir.display()))
        })?;
        let mut file = tokio::fs::File::from_std(staging.reopen().map_err(JobError::retryable)?);
        let downloaded =
            match self.storage.download_to(&target.object_key, &mut file, self.settings.max_object_bytes).await {
                Ok(d) => d,
                Err(StorageError::NotFound) => {
                    return Err(JobError::permanent(format!(
                        "object {} is gone from the bucket: upload the file again as new evidence",
                        target.object_key
                    )));
                }
                Err(e @ StorageError::TooLarge { .. }) => return Err(JobError::permanent(e)),
                Err(e) => return Err(storage_failure(format!("reading {}", target.object_key), e)),
            };
        drop(file);
        metrics::counter!("evidence_bytes_ingested_total").increment(downloaded.size);

        if downloaded.size != target.size_bytes as u64 {
            return Err(JobError::permanent(format!(
                "the stored object is {} bytes but {} were declared: it changed after upload",
                downloaded.size, target.size_bytes
            )));
        }
        if let Some(declared) = &target.declared_sha256
            && *declared != downloaded.sha256
        {
            return Err(JobError::permanent(format!(
                "checksum mismatch: declared sha256 {declared}, stored object has {}; upload the right file again",
                downloaded.sha256
            )));
        }

        if let Some(verified) = &target.verified_sha256
            && *verified != downloaded.sha256
        {
            metrics::counter!("evidence_integrity_failures_total", "check" => "reindex").increment(1);
            tracing::error!(evidence_id = %id, key = target.object_key, verified, found = downloaded.sha256,
                "stored bytes differ from the verified sha256");
            return Err(JobError::permanent(format!(
                "stored bytes differ from the verified sha256 {verified}: {} now holds bytes with sha256 {}; \
                 the verified sha256 is kept",
                target.object_key, downloaded.sha256
            )));
        }
        let stored_key = storage::content_key(tenant, &downloaded.sha256);
        if target.object_key != stored_key {
            self.store_verified(staging.path(), &stored_key, &downloaded).await?;
        }

        // Known bytes need no extraction: the content row (and its text) already exists, except
        // for a container, whose members each evidence of it has as children of its own. Plain
        // text costs less to extract than the query that would tell, so it skips the check and
        // lets the content insert's ON CONFLICT find the duplicate.
        let (path, declared, name) = (staging.path(), &target.content_type, &target.filename);
        let plain = self.extract_plain(path, declared, name).await;
        let known = match plain {
            Some(_) => None,
            None => self.known_content(tenant, &downloaded.sha256).await?,
        };
        let current = known
            .as_ref()
            .is_some_and(|(k, version)| *version >= EXTRACTOR_VERSION && !crate::extract::is_container(&k.0));
        // Where the child writes a container's members, and how many it may: only for a file
        // the child reads.
        let family = &self.settings.family;
        let folder = match plain.is_none() && !current {
            true => self.members_folder(tenant, &target).await?,
            false => None,
        };
        let members_dir = folder.as_ref().map(|(dir, room)| (dir.path(), *room));
        // `summary` is what the custody entry says of the content: from the extraction, or the
        // known row.
        // `failed`: the extraction failed (the file is indexed by its metadata); such a result
        // never replaces what an older version made of known bytes.
        let ((extracted, summary), failed) = match (plain, known) {
            (Some(plain), _) => {
                let failed = plain.is_err();
                (extracted_with_summary(plain.unwrap_or_else(|f| metadata_only(declared, f))), failed)
            }
            (None, Some((known, _))) if current => ((None, known), false),
            // Bytes an older version of the extraction read (or a container): extract them
            // again, and keep what was made before when this try fails (a limit, a crash under
            // load).
            (None, Some((known, _))) => match self.run_extractor(path, declared, name, members_dir).await? {
                Ok(x) => (extracted_with_summary(x), false),
                Err(f) => {
                    tracing::warn!(
                        reason = f.reason.as_str(),
                        message = f.message,
                        "extracting again failed; the older text is kept"
                    );
                    ((None, known), true)
                }
            },
            (None, None) => {
                let x = self.run_extractor(path, declared, name, members_dir).await?;
                let failed = x.is_err();
                (extracted_with_summary(x.unwrap_or_else(|f| metadata_only(declared, f))), failed)
            }
        };

        // A container's members, stored before the transaction that makes them its children;
        // what is said of those left out (and of a container that could not be opened).
        let mut note: Vec<String> = Vec::new();
        let members = match (&extracted, members_dir) {
            (Some(x), _) if x.family_error.is_some() => {
                let error = x.family_error.as_deref().unwrap_or_default();
                return Err(JobError::retryable(format!("the extraction could not write the members: {error}")));
            }
            (Some(x), Some((dir, room))) if !x.members.is_empty() => {
                note.extend(family::note(x, target.depth, family));
                let mut left = Vec::new();
                let stored = family::store_members(&self.storage, tenant, id, dir, &x.members, room, &mut left)
                    .await
                    .map_err(|family::StoreError(context, e)| storage_failure(context, e))?;
                if !left.is_empty() {
                    note.push(format!("{} member(s) not made evidence: {}", left.len(), left.join("; ")));
                }
                stored
            }
            (Some(x), _) => {
                note.extend(family::note(x, target.depth, family));
                if failed && crate::extract::is_container(&x.media_type) {
                    let why = x.note.as_deref().unwrap_or("the extraction failed");
                    note.push(format!("its members were not opened: {why}; reindex to try again"));
                }
                Vec::new()
            }
            (None, _) => Vec::new(),
        };

        let mut tx = ctx.begin_finish().await?;
        store::set_tenant(&mut tx, tenant).await?;
        let created = match &extracted {
            Some(x) => store::insert_content(&mut tx, tenant, &downloaded, x, INDEX_CHUNKING).await?,
            None => false,
        };
        // Known bytes, extracted again: replace what an older version made of them (a no-op
        // when the row is at this version, as for known plain text).
        let reextracted = match &extracted {
            Some(x) if !created && !failed => {
                store::replace_content(&mut tx, tenant, &downloaded.sha256, x, INDEX_CHUNKING).await?
            }
            _ => false,
        };
        if !created {
            store::fill_content_hashes(&mut tx, tenant, &downloaded).await?;
        }
        let sha256 = &downloaded.sha256;
        let indexed = store::mark_indexed(&mut tx, tenant, id, sha256, &stored_key, !created, ctx.attempt).await?;
        if let Some(duplicate) = indexed {
            let actor = Actor::worker(ctx.id);
            let request_id = ctx.correlation_id.as_deref();
            let (children, cut) = self.make_children(&mut tx, tenant, id, &members, &actor, request_id).await?;
            if cut > 0 {
                note.push(format!(
                    "{cut} member(s) not made evidence: the family reached its limit of {} members \
                     (INGEST_FAMILY_MAX_MEMBERS)",
                    family.max_members
                ));
            }
            if extracted.as_ref().is_some_and(|x| crate::extract::is_container(&x.media_type)) {
                let note = (!note.is_empty()).then(|| note.join(". "));
                store::set_family_note(&mut tx, tenant, id, note.as_deref()).await?;
            }
            let verified = json!({
                "sha256": downloaded.sha256, "sha1": downloaded.sha1, "md5": downloaded.md5,
                "size_bytes": downloaded.size, "stored_key": stored_key, "read_from": target.object_key,
            });
            let entry =
                NewEntry { evidence: id.0, event: Event::Verified, actor: &actor, request_id, details: verified };
            store::append_custody(&mut tx, tenant, &entry).await?;
            let mut indexed = json!({
                "duplicate": duplicate, "media_type": summary.0, "extractor": summary.1, "text_bytes": summary.2,
                "reextracted": reextracted,
            });
            if !members.is_empty() {
                indexed["members"] = json!(members.len());
                indexed["children_made"] = json!(children);
            }
            let entry = NewEntry { evidence: id.0, event: Event::Indexed, actor: &actor, request_id, details: indexed };
            store::append_custody(&mut tx, tenant, &entry).await?;
        }
        tx.commit().await?;
        if indexed.is_some() && target.object_key != stored_key {
            // The upload (or the old place of bytes verified before content keys) is not read
            // again; a PUT to its URL from now on changes nothing that is served or searched.
            self.uploads.delete(target.object_key);
        }
        if let Some(duplicate) = indexed {
            tracing::info!(evidence_id = %id, sha256 = downloaded.sha256, bytes = downloaded.size, duplicate, "evidence indexed");
        } else {
            // Moved out of `queued` by hand while we worked: its status is left as it is. A new
            // content row is kept; it is addressed by its bytes and harms nothing.
            tracing::warn!(evidence_id = %id, "evidence is no longer queued; its status was left alone");
        }
        Ok(())
    }

    async fn on_discard(&self, conn: &mut PgConnection, job: &DiscardInfo) -> Result<(), sqlx::Error> {
        // A payload that does not parse was discarded by the queue before `run` (permanent
        // error); it names no evidence, so there is no row to move. Said loudly, not silently.
        let args = match serde_json::from_value::<IngestEvidence>(job.payload.clone()) {
            Ok(args) => args,
            Err(e) => {
                tracing::error!(job_id = job.id.0, error = %e, "discarded ingest job names no evidence; nothing to mark");
                return Ok(());
            }
        };
        let reason =
            format!("{} (after {} attempt{})", job.error, job.attempt, if job.attempt == 1 { "" } else { "s" });
        store::set_tenant(conn, &args.tenant).await?;
        if store::mark_index_error(conn, &args.tenant, EvidenceId(args.evidence_id), &reason, job.attempt).await? {
            let entry = NewEntry {
                evidence: args.evidence_id,
                event: Event::Failed,
                actor: &Actor::worker(job.id),
                request_id: job.correlation_id.as_deref(),
                details: json!({"reason": reason, "attempts": job.attempt}),
            };
            store::append_custody(conn, &args.tenant, &entry).await?;
        }
        tracing::warn!(evidence_id = %args.evidence_id, error = reason, "evidence could not be indexed");
        Ok(())
    }
}

impl IngestHandler {
    /// Make the stored `members` children of `parent` with their ingest jobs, in the parent's
    /// finishing transaction; those that exist already (the parent read again) are left as
    /// they are. Returns how many were made, and how many the family's limit cut.
    async fn make_children(
        &self,
        tx: &mut PgConnection,
        tenant: &TenantId,
        parent: EvidenceId,
        members: &[store::NewMember],
        actor: &Actor,
        request_id: Option<&str>,
    ) -> Result<(usize, usize), JobError> {
        let max = self.settings.family.max_members;
        let (children, cut) = store::insert_members(tx, tenant, parent, members, actor, request_id, max).await?;
        if children.is_empty() {
            return Ok((0, cut));
        }
        let jobs = children
            .iter()
            .map(|child| {
                let object = Some(store::IngestObject::of(child));
                let args = IngestEvidence { evidence_id: child.id.0, tenant: tenant.clone(), object };
                Ok(NewJob::from_args(&args)
                    .map_err(JobError::permanent)?
                    .unique_key(child.id.0.to_string())
                    .max_attempts(self.max_attempts)
                    .correlation_id(request_id.map(str::to_owned)))
            })
            .collect::<Result<Vec<_>, JobError>>()?;
        let mut ids = queue::store::enqueue_many(&self.jobs, &mut *tx, &jobs).await?;
        // New evidence has no job yet, so no unique key is taken: one job each. Their ids come
        // from a sequence as the rows are inserted, in the order given: sorted, they pair with
        // the children (the order of RETURNING is not promised).
        ids.sort();
        let children: Vec<EvidenceId> = children.iter().map(|c| c.id).collect();
        if ids.len() != children.len() {
            return Err(JobError::retryable(format!(
                "{} children but {} jobs were enqueued",
                children.len(),
                ids.len()
            )));
        }
        store::set_jobs(tx, tenant, &children, &ids).await?;
        Ok((children.len(), cut))
    }

    /// A folder for the members the child may write, and how many its family still has room
    /// for; `None` when the evidence is as deep in its family as members are opened.
    async fn members_folder(
        &self,
        tenant: &TenantId,
        target: &store::IngestObject,
    ) -> Result<Option<(tempfile::TempDir, usize)>, JobError> {
        let (s, family) = (&self.settings, &self.settings.family);
        if target.depth >= family.max_depth {
            return Ok(None);
        }
        let folder = tempfile::tempdir_in(&s.tmp_dir)
            .map_err(|e| JobError::retryable(format!("cannot make a folder in {}: {e}", s.tmp_dir.display())))?;
        let size = match target.family_root {
            None => 0,
            Some(root) => {
                let mut tx = store::begin(&self.pool, tenant).await?;
                let size = store::family_size(&mut *tx, tenant, root).await?;
                store::end_read(tx);
                size.max(0) as usize
            }
        };
        Ok(Some((folder, family.max_members.saturating_sub(size))))
    }

    async fn ingest_target(
        &self,
        tenant: &TenantId,
        id: EvidenceId,
    ) -> Result<Option<(EvidenceStatus, store::IngestObject)>, sqlx::Error> {
        let mut tx = store::begin(&self.pool, tenant).await?;
        let target = store::ingest_target(&mut *tx, tenant, id).await?;
        store::end_read(tx);
        Ok(target)
    }

    /// Put the verified bytes at their content key, unless this tenant has them there already.
    async fn store_verified(&self, staging: &std::path::Path, key: &str, bytes: &Downloaded) -> Result<(), JobError> {
        self.storage
            .upload_file_once(key, staging, bytes.size, &bytes.md5)
            .await
            .map_err(|e| storage_failure(format!("storing the verified bytes at {key}"), e))
    }

    async fn known_content(
        &self,
        tenant: &TenantId,
        sha256: &str,
    ) -> Result<Option<(ContentSummary, i32)>, sqlx::Error> {
        let mut tx = store::begin(&self.pool, tenant).await?;
        let known = store::known_content(&mut *tx, tenant, sha256).await?;
        store::end_read(tx);
        Ok(known)
    }

    /// Plain text, extracted in process (see `extract::extract_plain_text`); `None` for anything
    /// that needs the sandboxed child.
    async fn extract_plain(
        &self,
        path: &std::path::Path,
        declared_type: &str,
        filename: &str,
    ) -> Option<Result<Extracted, Failure>> {
        let s = &self.settings;
        let limits = crate::extract::Limits {
            max_text_bytes: s.max_text_bytes as usize,
            max_parse_bytes: s.max_parse_bytes,
            ocr_languages: None,
            deadline: None,
            family: None,
        };
        let (owned_path, declared, name) = (path.to_owned(), declared_type.to_owned(), filename.to_owned());
        let started = std::time::Instant::now();
        let plain = tokio::task::spawn_blocking(move || {
            crate::extract::extract_plain_text(&owned_path, &declared, &name, &limits)
        })
        .await
        .ok()
        .flatten()?
        .map_err(|message| Failure::new(TextReason::Corrupt, message));
        crate::telemetry::record_extraction(&plain, started.elapsed());
        Some(plain)
    }

    /// Run the `extract` child with its limits. A crash, a time-out or a parse failure is not an
    /// ingest failure: the caller indexes the evidence by its metadata with the reason as a note.
    /// Only a child that cannot be started at all (a broken installation) fails the attempt.
    async fn run_extractor(
        &self,
        path: &Path,
        declared_type: &str,
        filename: &str,
        members_dir: Option<(&Path, usize)>,
    ) -> Result<Result<Extracted, Failure>, JobError> {
        let started = std::time::Instant::now();
        let extracted = self.run_extractor_child(path, declared_type, filename, members_dir).await?;
        crate::telemetry::record_extraction(&extracted, started.elapsed());
        Ok(extracted)
    }

    /// `members_dir`: where a container's members are written, and how many at most (none are
    /// without it).
    async fn run_extractor_child(
        &self,
        path: &Path,
        declared_type: &str,
        filename: &str,
        members_dir: Option<(&Path, usize)>,
    ) -> Result<Result<Extracted, Failure>, JobError> {
        let s = &self.settings;
        let scratch = tempfile::tempdir_in(&s.tmp_dir)
            .map_err(|e| JobError::retryable(format!("cannot make a folder in {}: {e}", s.tmp_dir.display())))?;
        let mut command = tokio::process::Command::new(&s.extract_bin);
        command
            .arg(path)
            .arg(declared_type)
            .arg(filename)
            .env_clear()
            .env("EXTRACT_MAX_TEXT_BYTES", s.max_text_bytes.to_string())
            .env("EXTRACT_MAX_PARSE_BYTES", s.max_parse_bytes.to_string())
            .env("EXTRACT_MEMORY_BYTES", s.extract_memory_bytes.to_string())
            .env("EXTRACT_CPU_SECONDS", s.extract_timeout.as_secs().max(1).to_string())
            .env("EXTRACT_OCR_LANGUAGES", s.ocr_languages.as_deref().unwrap_or("off"))
            // Where it finds pdftotext, pdftoppm and Tesseract.
            .env("PATH", &s.program_path)
            // What the child and its programs stage (OCR's page images) goes in a folder of this
            // call's, removed when it returns, even when the child was killed.
            .env("TMPDIR", scratch.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // A process group of its own: the programs it runs are ended with it.
            .process_group(0);
        if let Some((dir, room)) = members_dir {
            command
                .env("EXTRACT_MEMBERS_DIR", dir)
                .env("EXTRACT_MAX_MEMBERS", room.to_string())
                .env("EXTRACT_MAX_MEMBER_BYTES", s.family.max_bytes.to_string());
        }
        let mut child = command
            .spawn()
            .map_err(|e| JobError::retryable(format!("cannot start {}: {e}", s.extract_bin.display())))?;
        let _group = ProcessGroup(child.id());
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let run = async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let (r1, r2, status) =
                tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err), child.wait());
            r1.and(r2).map_err(|e| e.to_string())?;
            Ok::<_, String>((status.map_err(|e| e.to_string())?, out, err))
        };
        let (status, out, err) = match tokio::time::timeout(s.extract_timeout, run).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => {
                return Ok(Err(Failure::new(TextReason::Corrupt, format!("extractor output unreadable: {e}"))));
            }
            Err(_) => {
                let message = format!("took longer than {} s", s.extract_timeout.as_secs());
                return Ok(Err(Failure::new(TextReason::Timeout, message)));
            }
        };
        if !status.success() {
            let message = String::from_utf8_lossy(&err).trim().chars().take(500).collect::<String>();
            if let Some(code) = status.code().filter(|&c| installation_fault(c)) {
                return Err(JobError::retryable(format!("the extract child could not run (exit {code}): {message}")));
            }
            return Ok(Err(child_failure(status, message, s.extract_timeout.as_secs().max(1), s.extract_memory_bytes)));
        }
        Ok(serde_json::from_slice(&out)
            .map_err(|e| Failure::new(TextReason::Corrupt, format!("unreadable extractor output: {e}"))))
    }
}

/// Exit codes with which the `extract` child says it could not run at all (usage or settings
/// 64, a program it runs missing 69, its limits not set 70, its result not written 74): a broken
/// installation, not a property of the file, so the attempt fails and is retried.
fn installation_fault(code: i32) -> bool {
    matches!(code, 64 | 69 | 70 | 74)
}

/// The `extract` child's process group, killed when the call returns: a time-out or a
/// cancelled job leaves none of the programs it started (pdftotext, Tesseract) running. Then the
/// child has not been reaped yet (`kill_on_drop` acts after this), so the group is still its
/// own; after a child that ended by itself the group is empty and the kill finds nothing.
struct ProcessGroup(Option<u32>);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let Some(pid) = self.0.and_then(|id| rustix::process::Pid::from_raw(id as i32)) else { return };
        // Gone already (ESRCH) is the usual case.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Why the `extract` child ended without a result, from how it ended: its own report of a
/// parse failure (exit 65), a limit the kernel enforced (SIGXCPU: its CPU time; an allocation
/// refused under its address-space cap, which aborts the child, or which a reader reports as
/// "out of memory" and the child as a failure to read), or a crash. `cpu_secs` and
/// `memory_bytes`: its limits.
fn child_failure(status: std::process::ExitStatus, message: String, cpu_secs: u64, memory_bytes: u64) -> Failure {
    use std::os::unix::process::ExitStatusExt;
    const EX_DATAERR: i32 = 65;
    const SIGXCPU: i32 = 24;
    let out_of_memory =
        || Failure::new(TextReason::TooLarge, format!("ran out of its memory limit ({memory_bytes} bytes)"));
    match (status.code(), status.signal()) {
        // `std::io::ErrorKind::OutOfMemory`, as the child words a read it could not make.
        (Some(EX_DATAERR), _) if message.ends_with(": out of memory") => out_of_memory(),
        (Some(EX_DATAERR), _) => Failure::new(TextReason::Corrupt, message),
        (Some(code), _) => Failure::new(TextReason::Corrupt, format!("extractor exited with {code}: {message}")),
        (None, Some(SIGXCPU)) => Failure::new(TextReason::Timeout, format!("used up its CPU time ({cpu_secs} s)")),
        _ if message.contains("memory allocation") => out_of_memory(),
        _ if message.contains("overflowed its stack") => {
            Failure::new(TextReason::Corrupt, "the parser ran out of stack (a structure nested too deeply)")
        }
        (None, signal) => Failure::new(
            TextReason::Corrupt,
            format!("the extractor crashed (signal {})", signal.map_or("unknown".into(), |n| n.to_string())),
        ),
    }
}

fn extracted_with_summary(x: Extracted) -> (Option<Extracted>, ContentSummary) {
    let summary = (x.media_type.clone(), x.extractor.clone(), x.text.len() as i64);
    (Some(x), summary)
}

/// What a file whose text could not be extracted is indexed with: its metadata, and why.
fn metadata_only(declared_type: &str, failure: Failure) -> Extracted {
    tracing::warn!(
        reason = failure.reason.as_str(),
        message = failure.message,
        "text extraction failed; indexing metadata only"
    );
    failure.metadata_only(declared_type)
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use super::*;

    #[test]
    fn how_the_extract_child_ended_gives_the_reason() {
        let failure = |raw: i32, stderr: &str| child_failure(ExitStatus::from_raw(raw), stderr.into(), 60, 1 << 30);
        // Exit 65: the child's own report of a parse failure, in its words.
        let parse = failure(65 << 8, "PDF text extraction failed: invalid file trailer");
        assert_eq!(parse, Failure::new(TextReason::Corrupt, "PDF text extraction failed: invalid file trailer"));
        // Killed by the kernel at its CPU limit (SIGXCPU), or aborted when an allocation was
        // refused under its address-space cap.
        assert_eq!(failure(24, "").reason, TextReason::Timeout);
        let memory = failure(6, "memory allocation of 2147483648 bytes failed");
        assert_eq!(
            (memory.reason, memory.message.as_str()),
            (TextReason::TooLarge, "ran out of its memory limit (1073741824 bytes)")
        );
        // A read refused under the cap is the limit too, not a corrupt file.
        assert_eq!(failure(65 << 8, "cannot read the file: out of memory").reason, TextReason::TooLarge);
        assert_eq!(failure(6, "thread 'main' has overflowed its stack").reason, TextReason::Corrupt);
        assert_eq!(failure(11, "").message, "the extractor crashed (signal 11)");
        // Exits that say the child could not run are not about the file at all.
        assert!([64, 70, 74].into_iter().all(installation_fault) && !installation_fault(65));
    }
}
