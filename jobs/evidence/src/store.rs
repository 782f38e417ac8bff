//! Every SQL statement about evidence, content and API keys. Status changes are guarded by the
//! expected status and report whether the guard held. The job table is the queue's: nothing
//! here reads it (the service asks the queue for the jobs evidence points at).
//!
//! Tenancy has two walls. Every statement names its tenant (`tenant_id = $n`); and every
//! transaction of the application role first names it ([`begin_as_key`] for a request, the
//! tenant of its API key; [`begin`] or [`set_tenant`] for the worker), so that row-level
//! security shows that tenant's rows only, even to a statement that forgot its filter.

use chrono::{DateTime, Utc};
use queue::JobId;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::types::Json;
use sqlx::{Arguments, FromRow, PgConnection, PgExecutor, PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use crate::access::Role;
use crate::custody::{Actor, Entry, NewEntry, Verdict, Verifier};
use crate::extract::Extracted;
use crate::keys::{ApiKey, IssuedKey, NewKey};
use crate::model::{
    Evidence, EvidenceId, EvidenceStatus, Facets, ListFilter, NewEvidence, ReindexFilter, SearchHit, SearchPage,
    SearchQuery, TenantId,
};
use crate::query::{self, Clause, ClauseQuery, Term};
use crate::storage::Downloaded;

/// Name the tenant whose rows the rest of this transaction may see and write (row-level
/// security; the setting ends with the transaction).
pub async fn set_tenant(conn: &mut PgConnection, tenant: &TenantId) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)").bind(tenant.as_str()).execute(conn).await.map(|_| ())
}

/// A transaction in `tenant`: `BEGIN` and [`set_tenant`]'s setting in one round trip (one simple
/// query; a `TenantId` is only `a-z`, `0-9` and `-`, so it is safe as a literal).
pub async fn begin(pool: &PgPool, tenant: &TenantId) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with(sqlx::AssertSqlSafe(format!("BEGIN; SELECT set_config('app.tenant_id', '{tenant}', true)"))).await
}

/// A transaction of a request made with the API key `key`, in one round trip: the database
/// checks that the key was not revoked (else the error has SQLSTATE [`KEY_REVOKED`]) and sets
/// the key's tenant for the transaction (see the `enter_as_api_key` migration for why the call
/// comes before `BEGIN`).
pub async fn begin_as_key(pool: &PgPool, key: Uuid) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with(sqlx::AssertSqlSafe(format!("SELECT enter_as_api_key('{key}'); BEGIN"))).await
}

/// Name who acts for the rest of this transaction, for what database triggers record on their
/// own (the custody entry of an operator's cancel or retry of an ingest job): the setting
/// `app.actor`, ending with the transaction.
pub async fn set_actor(conn: &mut PgConnection, actor: &Actor, request_id: Option<&str>) -> Result<(), sqlx::Error> {
    let actor = serde_json::json!({"kind": actor.kind, "id": actor.id, "name": actor.name, "request_id": request_id});
    sqlx::query("SELECT set_config('app.actor', $1, true)").bind(actor.to_string()).execute(conn).await.map(|_| ())
}

/// The SQLSTATE of a transaction begun with a revoked key (invalid_authorization_specification).
pub const KEY_REVOKED: &str = "28000";

/// The evidence columns plus its content, as [`Evidence`] reads them, from a relation named `e`
/// (the table, or a CTE that inserted or updated rows).
macro_rules! evidence_columns {
    () => {
        "SELECT e.id, e.filename, e.content_type, e.size_bytes, e.declared_sha256, e.case_id, e.tags,
                e.description, e.custodian, e.collected_at, e.source, e.status, e.object_key, e.sha256, e.duplicate, e.attempts, e.last_error,
                e.request_id, e.idempotency_key, e.created_at, e.updated_at, e.queued_at, e.indexed_at, e.upload_expires_at,
                e.upload_id, e.upload_part_bytes,
                e.job_id, e.stored_key, e.fixity_checked_at, e.fixity_ok, c.sha1, c.md5, c.media_type, c.extractor,
                c.text_bytes, c.text_truncated, c.extract_note, c.text_reason, c.extractor_version, c.properties,
                e.parent_id, e.member_path, e.depth, e.family_note, e.family_root"
    };
}

macro_rules! evidence_joins {
    () => {
        " LEFT JOIN content c ON c.tenant_id = e.tenant_id AND c.sha256 = e.sha256 "
    };
}

const SELECT_EVIDENCE: &str = concat!(evidence_columns!(), " FROM evidence e", evidence_joins!());

/// Insert new evidence and read it back in one statement; with an Idempotency-Key already used,
/// return that row instead (`created == false`). The object key is made here, from the tenant
/// and the id.
pub async fn insert(
    conn: &mut PgConnection,
    tenant: &TenantId,
    new: &NewEvidence,
    upload_window: Option<std::time::Duration>,
) -> Result<(Evidence, bool), sqlx::Error> {
    let id = Uuid::new_v4();
    let tags = new.normalized_tags();
    let inserted = sqlx::query_as::<_, Evidence>(concat!(
        "WITH e AS (
             INSERT INTO evidence (id, tenant_id, filename, content_type, size_bytes, declared_sha256, case_id, tags,
                                   description, object_key, idempotency_key, request_id, custodian, collected_at,
                                   source, meta_tsv, upload_expires_at)
             VALUES ($1, $11, $2, $3, $4, $5, $6, $7, $8, $11 || '/uploads/' || $1::text, $9, $10, $12, $13, $14,
                     to_tsvector('english', $16), now() + make_interval(secs => $15))
             ON CONFLICT ON CONSTRAINT evidence_idempotency_key_unique DO NOTHING
             RETURNING *
         ) ",
        evidence_columns!(),
        " FROM e",
        evidence_joins!()
    ))
    .bind(id)
    .bind(new.filename.trim())
    .bind(&new.content_type)
    .bind(new.size_bytes)
    .bind(&new.sha256)
    .bind(new.case_id.as_deref().map(str::trim))
    .bind(&tags)
    .bind(&new.description)
    .bind(&new.idempotency_key)
    .bind(&new.request_id)
    .bind(tenant.as_str())
    .bind(new.custody.custodian.as_deref().map(str::trim))
    .bind(new.custody.collected_at)
    .bind(&new.custody.source)
    .bind(upload_window.map(|w| w.as_secs_f64()))
    .bind(metadata_text(new.filename.trim(), &tags, new.description.as_deref()))
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(evidence) = inserted {
        return Ok((evidence, true));
    }
    let existing = sqlx::query_as::<_, Evidence>(sqlx::AssertSqlSafe(format!(
        "{SELECT_EVIDENCE} WHERE e.tenant_id = $2 AND e.idempotency_key = $1"
    )))
    .bind(&new.idempotency_key)
    .bind(tenant.as_str())
    .fetch_one(&mut *conn)
    .await?;
    Ok((existing, false))
}

pub async fn get<'e>(
    exec: impl PgExecutor<'e>,
    tenant: &TenantId,
    id: EvidenceId,
) -> Result<Option<Evidence>, sqlx::Error> {
    sqlx::query_as::<_, Evidence>(sqlx::AssertSqlSafe(format!(
        "{SELECT_EVIDENCE} WHERE e.tenant_id = $2 AND e.id = $1"
    )))
    .bind(id)
    .bind(tenant.as_str())
    .fetch_optional(exec)
    .await
}

/// Newest first, filtered, one page after the keyset position; within `cases` when given.
pub async fn list<'e>(
    exec: impl PgExecutor<'e>,
    tenant: &TenantId,
    cases: Option<&[String]>,
    f: &ListFilter,
) -> Result<Vec<Evidence>, sqlx::Error> {
    let (after_ts, after_id) = f.after.map(|(ts, id)| (Some(ts), Some(id))).unwrap_or((None, None));
    // A container's members: a statement of its own, whose plan (kept once generic) can use the
    // partial index of children, which `$13 IS NULL OR parent_id = $13` would keep it from.
    let parent = match f.parent_id {
        Some(_) => "e.parent_id = $13",
        None => "$13::uuid IS NULL",
    };
    sqlx::query_as::<_, Evidence>(sqlx::AssertSqlSafe(format!(
        "{SELECT_EVIDENCE}
         WHERE e.tenant_id = $8 AND {parent}
           AND ($9::text[] IS NULL OR e.case_id = ANY($9))
           AND ($1::text IS NULL OR e.status = $1)
           AND ($2::text IS NULL OR e.case_id = $2)
           AND ($3::text IS NULL OR e.tags @> ARRAY[$3])
           AND ($4::timestamptz IS NULL OR (e.created_at, e.id) < ($4, $5))
           AND ($7::text IS NULL OR e.sha256 = $7)
           AND ($10::text IS NULL OR c.sha1 = $10)
           AND ($11::text IS NULL OR c.md5 = $11)
           AND ($12::text IS NULL OR c.text_reason = $12)
         ORDER BY e.created_at DESC, e.id DESC
         LIMIT $6"
    )))
    .bind(f.status.map(EvidenceStatus::as_str))
    .bind(&f.case_id)
    .bind(&f.tag)
    .bind(after_ts)
    .bind(after_id)
    .bind(f.limit)
    .bind(&f.sha256)
    .bind(tenant.as_str())
    .bind(cases)
    .bind(&f.sha1)
    .bind(&f.md5)
    .bind(f.text_reason)
    .bind(f.parent_id.map(|id| id.0))
    .fetch_all(exec)
    .await
}

/// Evidence a bulk reindex may queue, by id: indexed or index_error, in the caller's cases.
pub async fn reindex_candidates<'e>(
    exec: impl PgExecutor<'e>,
    tenant: &TenantId,
    cases: Option<&[String]>,
    f: &ReindexFilter,
) -> Result<Vec<Evidence>, sqlx::Error> {
    sqlx::query_as::<_, Evidence>(sqlx::AssertSqlSafe(format!(
        "{SELECT_EVIDENCE}
         WHERE e.tenant_id = $1
           AND ($2::text[] IS NULL OR e.case_id = ANY($2))
           AND e.status IN ('indexed', 'index_error')
           AND ($3::text IS NULL OR e.case_id = $3)
           AND ($4::int IS NULL OR coalesce(c.extractor_version, 0) < $4)
           AND ($5::uuid IS NULL OR e.id > $5)
         ORDER BY e.id
         LIMIT $6"
    )))
    .bind(tenant.as_str())
    .bind(cases)
    .bind(&f.case_id)
    .bind(f.below_extractor_version)
    .bind(f.after.map(|id| id.0))
    .bind(f.limit)
    .fetch_all(exec)
    .await
}

/// `from → queued` with its new job, recording who asked, and read back in one statement; `None`
/// when the row was not in `from`.
pub async fn mark_queued(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: EvidenceId,
    from: EvidenceStatus,
    job: JobId,
    request_id: Option<&str>,
) -> Result<Option<Evidence>, sqlx::Error> {
    sqlx::query_as::<_, Evidence>(concat!(
        "WITH e AS (
             UPDATE evidence SET status = 'queued', job_id = $5, queued_at = now(), updated_at = now(), attempts = 0,
                                 last_error = NULL, request_id = coalesce($3, request_id)
             WHERE tenant_id = $4 AND id = $1 AND status = $2
             RETURNING *
         ) ",
        evidence_columns!(),
        " FROM e",
        evidence_joins!()
    ))
    .bind(id)
    .bind(from.as_str())
    .bind(request_id)
    .bind(tenant.as_str())
    .bind(job)
    .fetch_optional(conn)
    .await
}

/// End a transaction that only read. Dropping it rolls it back, and sqlx sends that `ROLLBACK`
/// with the connection's next message (its check when it returns to the pool), so the request
/// does not wait for it as it would for a `COMMIT`.
pub fn end_read(tx: Transaction<'static, Postgres>) {
    drop(tx);
}

/// What the ingest job needs to know about its evidence's object. None of it changes after the
/// evidence is created, so it travels in the job's payload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IngestObject {
    /// Where to read the bytes: the upload, or for evidence verified before, its stored bytes.
    pub object_key: String,
    pub size_bytes: i64,
    pub declared_sha256: Option<String>,
    pub content_type: String,
    pub filename: String,
    /// The sha256 the bytes were verified with, when they were: what they must still hash to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_sha256: Option<String>,
    /// How deep in its family the evidence is (0: handed over; a container's member: 1, …).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub depth: i32,
    /// The file handed over that a member's family descends from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_root: Option<Uuid>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

impl IngestObject {
    /// The object an ingest of `e` reads: its upload the first time, its stored bytes after.
    pub fn of(e: &Evidence) -> Self {
        Self {
            object_key: e.stored_key.clone().unwrap_or_else(|| e.object_key.clone()),
            size_bytes: e.size_bytes,
            declared_sha256: e.declared_sha256.clone(),
            content_type: e.content_type.clone(),
            filename: e.filename.clone(),
            verified_sha256: e.sha256.clone(),
            depth: e.depth,
            family_root: e.family_root.map(|id| id.0),
        }
    }
}

/// The evidence's status and object, for jobs whose payload carries only the id.
pub async fn ingest_target<'e>(
    exec: impl PgExecutor<'e>,
    tenant: &TenantId,
    id: EvidenceId,
) -> Result<Option<(EvidenceStatus, IngestObject)>, sqlx::Error> {
    Ok(get(exec, tenant, id).await?.map(|e| (e.status, IngestObject::of(&e))))
}

/// What the tenant's content row for these bytes says of their extraction (media type,
/// extractor, text bytes) and the version of the extraction that made it, or `None` when the
/// bytes are new to the tenant.
pub async fn known_content<'e>(
    exec: impl PgExecutor<'e>,
    tenant: &TenantId,
    sha256: &str,
) -> Result<Option<(ContentSummary, i32)>, sqlx::Error> {
    let row: Option<(String, String, i64, i32)> = sqlx::query_as(
        "SELECT media_type, extractor, text_bytes, extractor_version FROM content WHERE tenant_id = $1 AND sha256 = $2",
    )
    .bind(tenant.as_str())
    .bind(sha256)
    .fetch_optional(exec)
    .await?;
    Ok(row.map(|(media_type, extractor, text_bytes, version)| ((media_type, extractor, text_bytes), version)))
}

/// Media type, extractor and text bytes of a content row.
pub type ContentSummary = (String, String, i64);

/// Store extracted text under its checksum, in the tenant. Concurrent ingests of the same bytes do not race:
/// the second insert waits for the first to commit and then does nothing. Returns whether this
/// call created the row (false: the content was already known — a duplicate).
pub async fn insert_content(
    conn: &mut PgConnection,
    tenant: &TenantId,
    bytes: &Downloaded,
    x: &Extracted,
    chunking: crate::extract::Chunking,
) -> Result<bool, sqlx::Error> {
    // Chunks are written by the same statement (a data-modifying CTE always runs to completion),
    // and only for a content row this statement created: a duplicate's chunks already exist.
    let (seqs, chunks, pages) = chunk_rows(x, chunking);
    let created: bool = sqlx::query_scalar(
        "WITH c AS (
             INSERT INTO content (tenant_id, sha256, size_bytes, media_type, extractor, text_bytes, text_truncated,
                                  extract_note, sha1, md5, fixity_checked_at, text_reason, extractor_version, properties)
             VALUES ($10, $1, $2, $3, $4, $5, $6, $7, $11, $12, now(), $13, $14, $17)
             ON CONFLICT (tenant_id, sha256) DO NOTHING
             RETURNING tenant_id, sha256
         ),
         ch AS (
             INSERT INTO content_chunk (tenant_id, sha256, seq, body, tsv, page)
             SELECT c.tenant_id, c.sha256, t.seq, t.body, to_tsvector('english', t.indexed), t.page
             FROM c, unnest($8::int[], $9::text[], $15::text[], $16::int[]) AS t(seq, body, indexed, page)
             RETURNING 1
         )
         SELECT EXISTS (SELECT 1 FROM c)",
    )
    .bind(&bytes.sha256)
    .bind(bytes.size as i64)
    .bind(&x.media_type)
    .bind(&x.extractor)
    .bind(x.text.len() as i64)
    .bind(x.truncated)
    .bind(&x.note)
    .bind(&seqs)
    .bind(&chunks)
    .bind(tenant.as_str())
    .bind(&bytes.sha1)
    .bind(&bytes.md5)
    .bind(x.reason)
    .bind(crate::extract::EXTRACTOR_VERSION)
    .bind(indexed_forms(&chunks, &x.properties))
    .bind(&pages)
    .bind(properties(x))
    .fetch_one(&mut *conn)
    .await?;
    Ok(created)
}

/// A document's properties as stored: NULL when it states none.
fn properties(x: &Extracted) -> Option<sqlx::types::Json<&crate::extract::Properties>> {
    (!x.properties.is_empty()).then_some(sqlx::types::Json(&x.properties))
}

/// Replace what an older version of the extraction made of these bytes (the content row's
/// text fields and its chunks) with `x`, made by this one. Does nothing when the row is at
/// this version already (a concurrent re-extraction got there first: the row lock orders
/// them, and the second finds the new version). Returns whether it replaced the row.
pub async fn replace_content(
    conn: &mut PgConnection,
    tenant: &TenantId,
    sha256: &str,
    x: &Extracted,
    chunking: crate::extract::Chunking,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE content SET media_type = $3, extractor = $4, text_bytes = $5, text_truncated = $6, extract_note = $7,
                            text_reason = $8, extractor_version = $9, properties = $10
         WHERE tenant_id = $1 AND sha256 = $2 AND extractor_version < $9",
    )
    .bind(tenant.as_str())
    .bind(sha256)
    .bind(&x.media_type)
    .bind(&x.extractor)
    .bind(x.text.len() as i64)
    .bind(x.truncated)
    .bind(&x.note)
    .bind(x.reason)
    .bind(crate::extract::EXTRACTOR_VERSION)
    .bind(properties(x))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM content_chunk WHERE tenant_id = $1 AND sha256 = $2")
        .bind(tenant.as_str())
        .bind(sha256)
        .execute(&mut *conn)
        .await?;
    let (seqs, chunks, pages) = chunk_rows(x, chunking);
    sqlx::query(
        "INSERT INTO content_chunk (tenant_id, sha256, seq, body, tsv, page)
         SELECT $1, $2, t.seq, t.body, to_tsvector('english', t.indexed), t.page
         FROM unnest($3::int[], $4::text[], $5::text[], $6::int[]) AS t(seq, body, indexed, page)",
    )
    .bind(tenant.as_str())
    .bind(sha256)
    .bind(&seqs)
    .bind(&chunks)
    .bind(indexed_forms(&chunks, &x.properties))
    .bind(&pages)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// What an evidence's metadata tsvector is made from: the filename as written, without its
/// extension (so `INV-2024-0042.pdf` is found by `INV-2024-0042`, as that identifier in a text
/// is: the whole name is one token) and, for a name with several, without all of them (so
/// `backup-2024.tar.gz` is found by `backup-2024`), and with its punctuation as spaces (so
/// `board-minutes_2024.pdf` is found by `minutes`); the tags, the description; in
/// [`query::index_form`] as the text is. A name's words are thus in it twice (three times with
/// several extensions), as a name without an extension always was (as written, and split); the
/// rank counts the metadata a quarter. Migration 20261207000005 added the names without their extensions to the
/// evidence made before.
fn metadata_text(filename: &str, tags: &[String], description: Option<&str>) -> String {
    let without_last = filename.rsplit_once('.').map_or("", |(stem, _)| stem);
    let without_all = filename.split_once('.').map_or("", |(stem, _)| stem);
    let stems =
        if without_all == without_last { without_last.to_owned() } else { format!("{without_last} {without_all}") };
    let split: String = filename.chars().map(|c| if c.is_alphanumeric() { c } else { ' ' }).collect();
    let text = format!("{filename} {stems} {split} {} {}", tags.join(" "), description.unwrap_or_default());
    query::index_form(&text).into_owned()
}

/// The chunk rows of extracted text: sequence numbers, texts, and the page each starts on
/// (for paged text only; `NULL` otherwise). A file without text that states a title, an
/// author or addressees has one empty chunk, whose tsvector holds their words (see
/// [`indexed_forms`]), so that search finds it by them as it finds a file with text.
fn chunk_rows(x: &Extracted, chunking: crate::extract::Chunking) -> (Vec<i32>, Vec<&str>, Vec<Option<i32>>) {
    let chunked = match x.text.trim().is_empty() {
        true if x.properties.searchable_text().is_empty() => Vec::new(),
        true => vec![("", 1)],
        false => crate::extract::paged_chunks(&x.text, chunking),
    };
    let seqs = (0..chunked.len() as i32).collect();
    let pages = chunked.iter().map(|(_, page)| x.paged.then_some(*page)).collect();
    (seqs, chunked.into_iter().map(|(chunk, _)| chunk).collect(), pages)
}

/// What each chunk's tsvector is made from: its text in [`query::index_form`] (runs of
/// Chinese, Japanese or Korean cut into pairs), the first chunk's with the words of the
/// document's properties too (title, author, addressees), so that search finds them; the
/// chunk keeps its text as it is.
fn indexed_forms(chunks: &[&str], properties: &crate::extract::Properties) -> Vec<String> {
    let mut forms: Vec<String> = chunks.iter().map(|c| query::index_form(c).into_owned()).collect();
    if let Some(first) = forms.first_mut() {
        let words = properties.searchable_text();
        if !words.is_empty() {
            first.push('\n');
            first.push_str(&query::index_form(&words));
        }
    }
    forms
}

/// Fill in the SHA-1 and MD5 of content verified before they were computed (a no-op once set).
pub async fn fill_content_hashes(
    conn: &mut PgConnection,
    tenant: &TenantId,
    bytes: &Downloaded,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE content SET sha1 = $3, md5 = $4
         WHERE tenant_id = $1 AND sha256 = $2 AND (sha1 IS NULL OR md5 IS NULL)",
    )
    .bind(tenant.as_str())
    .bind(&bytes.sha256)
    .bind(&bytes.sha1)
    .bind(&bytes.md5)
    .execute(conn)
    .await
    .map(|_| ())
}

/// `queued → indexed`, pointing at its content. Returns the duplicate flag the row now holds
/// (a reindex of the same bytes keeps the first ingest's), or `None` when the evidence was no
/// longer queued.
pub async fn mark_indexed(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: EvidenceId,
    sha256: &str,
    stored_key: &str,
    duplicate: bool,
    attempt: i32,
) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE evidence SET status = 'indexed', sha256 = $2, stored_key = $6, attempts = $4, last_error = NULL,
                             fixity_checked_at = now(), fixity_ok = true,
                             duplicate = CASE WHEN sha256 = $2 AND duplicate IS NOT NULL THEN duplicate ELSE $3 END,
                             indexed_at = now(), updated_at = now()
         WHERE tenant_id = $5 AND id = $1 AND status = 'queued'
         RETURNING duplicate",
    )
    .bind(id)
    .bind(sha256)
    .bind(duplicate)
    .bind(attempt)
    .bind(tenant.as_str())
    .bind(stored_key)
    .fetch_optional(conn)
    .await
}

/// A container's member, as its parent's ingest makes it evidence: the bytes are already at
/// their content key (`object_key`), and must still hash to `sha256` when its own ingest reads them.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub id: EvidenceId,
    pub filename: String,
    pub content_type: String,
    pub member_path: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub object_key: String,
}

/// Make `members` children of `parent`, already `queued`, in its case with its tags and custody
/// fields, each with its `created` custody entry (by `actor`, saying where it was found). A
/// member whose id exists already (the parent read again) is skipped; of the others, no more
/// are made than leave the family (the file handed over and every member below it) at most
/// `max_family` members: the family's root row is locked first, so its containers finishing
/// at once take turns. Returns the children made (their ingest jobs are the caller's to
/// enqueue, then [`set_jobs`]) and how many members the family's limit cut.
pub async fn insert_members(
    conn: &mut PgConnection,
    tenant: &TenantId,
    parent: EvidenceId,
    members: &[NewMember],
    actor: &Actor,
    request_id: Option<&str>,
    max_family: usize,
) -> Result<(Vec<Evidence>, usize), sqlx::Error> {
    if members.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let family: Option<(Vec<String>, i64)> = sqlx::query_as(
        "SELECT p.tags, (SELECT count(*) FROM evidence f WHERE f.tenant_id = $1 AND f.family_root = r.id)
         FROM evidence p
         JOIN evidence r ON r.tenant_id = p.tenant_id AND r.id = coalesce(p.family_root, p.id)
         WHERE p.tenant_id = $1 AND p.id = $2
         FOR UPDATE OF r",
    )
    .bind(tenant.as_str())
    .bind(parent)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((tags, size)) = family else { return Ok((Vec::new(), 0)) };
    let ids: Vec<Uuid> = members.iter().map(|m| m.id.0).collect();
    let existing: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM evidence WHERE tenant_id = $1 AND id = ANY($2)")
        .bind(tenant.as_str())
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
    let new: Vec<&NewMember> = members.iter().filter(|m| !existing.contains(&m.id.0)).collect();
    let room = max_family.saturating_sub(size.max(0) as usize);
    let (made, cut) = new.split_at(new.len().min(room));
    if made.is_empty() {
        return Ok((Vec::new(), cut.len()));
    }
    let column = |f: fn(&NewMember) -> String| made.iter().map(|m| f(m)).collect::<Vec<_>>();
    let meta: Vec<String> = made
        .iter()
        .map(|m| metadata_text(&m.filename, &tags, Some(&crate::extract::family::path_words(&m.member_path))))
        .collect();
    let children = sqlx::query_as::<_, Evidence>(concat!(
        "WITH e AS (
             INSERT INTO evidence (id, tenant_id, filename, content_type, size_bytes, declared_sha256, case_id, tags,
                                   object_key, request_id, custodian, collected_at, source, meta_tsv,
                                   status, queued_at, parent_id, member_path, depth, family_root)
             SELECT m.id, p.tenant_id, m.filename, m.content_type, m.size_bytes, m.sha256, p.case_id, p.tags,
                    m.object_key, $10, p.custodian, p.collected_at, p.source, to_tsvector('english', m.meta),
                    'queued', now(), p.id, m.path, p.depth + 1, coalesce(p.family_root, p.id)
             FROM evidence p,
                  unnest($3::uuid[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[],
                         $11::text[]) AS m(id, filename, content_type, size_bytes, sha256, object_key, path, meta)
             WHERE p.tenant_id = $1 AND p.id = $2
             ON CONFLICT (id) DO NOTHING
             RETURNING *
         ), entry AS (
             INSERT INTO custody_entry (tenant_id, evidence_id, event, actor_kind, actor_id, actor_name, request_id,
                                        details)
             SELECT e.tenant_id, e.id, 'created', $12, $13, $14, $10,
                    jsonb_build_object('parent_id', e.parent_id, 'member_path', e.member_path, 'depth', e.depth,
                                       'filename', e.filename, 'content_type', e.content_type,
                                       'size_bytes', e.size_bytes, 'sha256', e.declared_sha256)::text
             FROM e
         ) ",
        evidence_columns!(),
        " FROM e",
        evidence_joins!(),
        " ORDER BY e.member_path, e.id"
    ))
    .bind(tenant.as_str())
    .bind(parent)
    .bind(made.iter().map(|m| m.id.0).collect::<Vec<_>>())
    .bind(column(|m| m.filename.clone()))
    .bind(column(|m| m.content_type.clone()))
    .bind(made.iter().map(|m| m.size_bytes).collect::<Vec<_>>())
    .bind(column(|m| m.sha256.clone()))
    .bind(column(|m| m.object_key.clone()))
    .bind(column(|m| m.member_path.clone()))
    .bind(request_id)
    .bind(meta)
    .bind(actor.kind)
    .bind(&actor.id)
    .bind(&actor.name)
    .fetch_all(conn)
    .await?;
    Ok((children, cut.len()))
}

/// How many members the family of `root` has (see [`insert_members`]).
pub async fn family_size<'e>(exec: impl PgExecutor<'e>, tenant: &TenantId, root: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM evidence WHERE tenant_id = $1 AND family_root = $2")
        .bind(tenant.as_str())
        .bind(root)
        .fetch_one(exec)
        .await
}

/// Point each evidence at its ingest job (children made by [`insert_members`]).
pub async fn set_jobs(
    conn: &mut PgConnection,
    tenant: &TenantId,
    ids: &[EvidenceId],
    jobs: &[JobId],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE evidence e SET job_id = j.job_id
         FROM unnest($2::uuid[], $3::bigint[]) AS j(id, job_id)
         WHERE e.tenant_id = $1 AND e.id = j.id",
    )
    .bind(tenant.as_str())
    .bind(ids.iter().map(|id| id.0).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.0).collect::<Vec<_>>())
    .execute(conn)
    .await
    .map(|_| ())
}

/// Record which members of the container `id` were not made evidence, and why (`None`: all were).
pub async fn set_family_note(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: EvidenceId,
    note: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE evidence SET family_note = $3 WHERE tenant_id = $1 AND id = $2 AND family_note IS DISTINCT FROM $3",
    )
    .bind(tenant.as_str())
    .bind(id)
    .bind(note)
    .execute(conn)
    .await
    .map(|_| ())
}

/// `queued → index_error` with the reason (the ingest job's discard hook).
pub async fn mark_index_error(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: EvidenceId,
    error: &str,
    attempt: i32,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE evidence SET status = 'index_error', last_error = $2, attempts = $3, updated_at = now()
         WHERE tenant_id = $4 AND id = $1 AND status = 'queued'",
    )
    .bind(id)
    .bind(error)
    .bind(attempt)
    .bind(tenant.as_str())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// SQLSTATE of a statement cancelled by `statement_timeout`.
pub const QUERY_CANCELED: &str = "57014";

/// Each term of `clauses`, in order, as a tsquery in Postgres's own text form, made with the
/// dictionary that indexed the text (`phraseto_tsquery` for words and phrases, `to_tsquery` with
/// `:*` for a prefix, which is letters and digits only, so it cannot carry tsquery operators);
/// an empty string for a term that reduces to nothing (stop words, punctuation).
pub async fn term_tsqueries(conn: &mut PgConnection, clauses: &[Clause]) -> Result<Vec<String>, sqlx::Error> {
    let terms: Vec<&Term> = clauses.iter().flat_map(|c| &c.any_of).collect();
    // In the form the text was indexed in; a prefix of Chinese, Japanese or Korean becomes the
    // phrase of its pairs (which finds it at the start of a run and inside one).
    let texts: Vec<String> = terms.iter().map(|t| query::index_form(t.text()).into_owned()).collect();
    // One character alone is asked for as the start of a pair (or a run of one).
    let kinds: Vec<&str> = terms
        .iter()
        .zip(&texts)
        .map(|(t, text)| match text.trim().chars().count() {
            _ if text == t.text() => t.kind(),
            1 => "prefix",
            _ => "phrase",
        })
        .collect();
    // Content indexed before runs were cut into pairs (extractor version 1, and the metadata of
    // evidence created before) holds a run as one word: such a term also asks for it whole.
    let whole: Vec<Option<&str>> =
        terms.iter().zip(&texts).map(|(t, text)| (text != t.text()).then_some(t.text())).collect();
    let texts: Vec<&str> = texts.iter().map(|t| t.trim()).collect();
    sqlx::query_scalar(
        "SELECT CASE WHEN numnode(q) = 0 THEN '' ELSE q::text END
         FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS t(kind, text, whole, n),
              LATERAL (SELECT CASE t.kind WHEN 'prefix' THEN to_tsquery('english', t.text || ':*')
                                          ELSE phraseto_tsquery('english', t.text) END AS pairs) AS made,
              LATERAL (SELECT CASE WHEN t.whole IS NULL THEN made.pairs
                                   ELSE made.pairs || phraseto_tsquery('english', t.whole) END AS q) AS asked
         ORDER BY t.n",
    )
    .bind(kinds)
    .bind(texts)
    .bind(whole)
    .fetch_all(conn)
    .await
}

/// The hits of a search, as CTEs that end in `hit` (one row per matching evidence, with its
/// rank): per evidence, every required clause occurs in some chunk of its text or in its
/// metadata, and no excluded clause occurs in either. `search_matches` (in the tenant the
/// transaction set, through the GIN indexes; see its migration) finds at most $8 of them and
/// one more if there are more: `hit` holds the first $8 found, and `more` says whether there
/// were others, which are then neither ranked, counted nor faceted. The key's cases are checked
/// again here, under the policies. Rank: for each required clause, its best chunk's
/// `ts_rank_cd` plus a quarter of its metadata's, summed over the clauses in `numeric` (exact, so a rank
/// is the same float on every page).
/// Parameters: $1, $2 the clauses' tsqueries and whether each is excluded, $3 the tenant, $4 the
/// key's cases, $5 case, $6 tag, $7 type, $8 the bound.
macro_rules! search_hits {
    () => {
        "WITH clause AS (
             SELECT c.n, c.excluded, c.q::tsquery AS q
             FROM unnest($1::text[], $2::bool[]) WITH ORDINALITY AS c(q, excluded, n)
         ),
         found AS (
             SELECT evidence_id, found_at FROM search_matches($1, $2, $4, $5, $6, $7, $8::int4)
         ),
         hit AS (
             SELECT e.id, e.filename, e.content_type, c.media_type, e.case_id, e.tags, e.sha256, e.created_at, e.custodian,
                    e.parent_id, e.member_path,
                    -- A chunk without the clause ranks 0 (a clause holds no negation), so no
                    -- `@@` here: each chunk's tsvector is decompressed once, not twice. The
                    -- metadata counts a quarter: a name's words are in it twice (see
                    -- metadata_text), so each counts half a word of the text.
                    (SELECT sum(coalesce((SELECT max(ts_rank_cd(ch.tsv, r.q)) FROM content_chunk ch
                                          WHERE ch.tenant_id = $3 AND ch.sha256 = e.sha256), 0)::numeric
                                + 0.25 * ts_rank_cd(e.meta_tsv, r.q)::numeric)
                     FROM clause r WHERE NOT r.excluded)::float4 AS rank
             FROM (SELECT evidence_id FROM found WHERE found_at <= $8) f
             JOIN evidence e ON e.id = f.evidence_id
             LEFT JOIN content c ON c.tenant_id = e.tenant_id AND c.sha256 = e.sha256
             WHERE e.tenant_id = $3 AND ($4::text[] IS NULL OR e.case_id = ANY($4))
         ),
         more AS (SELECT EXISTS (SELECT 1 FROM found WHERE found_at > $8) AS more)"
    };
}

/// What `search` says of the hits it holds, as a CTE after `search_hits!`: their number, whether
/// there were more, and, for facets, the 20 commonest cases, types (sniffed, else declared), tags
/// and custodians among them.
macro_rules! search_summary {
    () => {
        ",
         facet_value AS (
             SELECT 'case_id' AS facet, case_id AS v FROM hit
             UNION ALL SELECT 'media_type', coalesce(media_type, content_type) FROM hit
             UNION ALL SELECT 'tag', t FROM hit, unnest(hit.tags) AS t
             UNION ALL SELECT 'custodian', custodian FROM hit
         ),
         facet_count AS (
             SELECT facet, v, count(*) AS n, row_number() OVER (PARTITION BY facet ORDER BY count(*) DESC, v) AS place
             FROM facet_value WHERE v IS NOT NULL GROUP BY facet, v
         ),
         summary AS (
             SELECT (SELECT count(*) FROM hit) AS total, (SELECT more FROM more) AS more,
                    '{\"case_id\": [], \"media_type\": [], \"tag\": [], \"custodian\": []}'::jsonb
                    || coalesce((SELECT jsonb_object_agg(facet, counts) FROM (
                           SELECT facet, jsonb_agg(jsonb_build_object('value', v, 'count', n) ORDER BY place) AS counts
                           FROM facet_count WHERE place <= 20 GROUP BY facet) f), '{}') AS facets
         )"
    };
}

/// Ranked full-text search over one tenant's evidence, within `cases` when given (see
/// `search_hits!` for what matches and how it ranks): of the first `bound` hits found, the page
/// after `s.after`, best first, their number and facets, and whether more than `bound` match.
/// `clauses` hold at least one required clause. The snippet comes from the chunk that best
/// matches any required clause, for the returned page only (ts_headline is the expensive part).
/// Plans are made for each search's own values (`plan_cache_mode`), and the server cancels the
/// search after `timeout` (`statement_timeout`): both for the rest of the caller's transaction,
/// which should hold the search alone.
pub async fn search(
    conn: &mut PgConnection,
    tenant: &TenantId,
    cases: Option<&[String]>,
    s: &SearchQuery,
    clauses: &[ClauseQuery],
    bound: u32,
    timeout: std::time::Duration,
) -> Result<SearchPage, sqlx::Error> {
    sqlx::query(
        "SELECT set_config('statement_timeout', $1, true), set_config('plan_cache_mode', 'force_custom_plan', true)",
    )
    .bind(format!("{}ms", timeout.as_millis().max(1)))
    .execute(&mut *conn)
    .await?;
    let page = concat!(
        search_hits!(),
        search_summary!(),
        ",
         page AS (
             SELECT * FROM hit
             WHERE $10::float4 IS NULL OR rank < $10
                OR (rank = $10 AND (created_at < $11 OR (created_at = $11 AND id > $12)))
             ORDER BY rank DESC, created_at DESC, id LIMIT $9
         )
         SELECT p.id, p.filename, p.content_type, p.media_type, p.case_id, p.tags, p.sha256, p.rank,
                best.seq IS NOT NULL AS matched_text, p.created_at, s.total, s.more, s.facets, best.page,
                p.parent_id, p.member_path,
                replace(ts_headline('english', best.body, $13::tsquery,
                                    'StartSel=«, StopSel=», MaxWords=30, MinWords=10, MaxFragments=2'), chr(12), ' ')
                    AS snippet
         FROM page p
         CROSS JOIN summary s
         LEFT JOIN LATERAL (
             SELECT ch.seq, ch.body, ch.page FROM content_chunk ch
             WHERE ch.tenant_id = $3 AND ch.sha256 = p.sha256 AND ch.tsv @@ $13::tsquery
             ORDER BY ts_rank_cd(ch.tsv, $13::tsquery) DESC, ch.seq LIMIT 1
         ) best ON true
         ORDER BY p.rank DESC, p.created_at DESC, p.id"
    );
    let required: Vec<&str> = clauses.iter().filter(|c| !c.excluded).map(|c| c.tsquery.as_str()).collect();
    let mut args = hit_arguments(tenant, cases, s, clauses, bound)?;
    let (rank, created_at, id) = s.after.map_or((None, None, None), |(r, c, i)| (Some(r), Some(c), Some(i)));
    (|| {
        args.add(s.limit)?;
        args.add(rank)?;
        args.add(created_at)?;
        args.add(id)?;
        args.add(query::any_of(&required))
    })()
    .map_err(sqlx::Error::Encode)?;
    type Summary = (i64, bool, Json<Facets>);
    let rows: Vec<(Summary, SearchHit)> = sqlx::query_with(page, args)
        .try_map(|row: PgRow| {
            let summary = (row.try_get("total")?, row.try_get("more")?, row.try_get("facets")?);
            Ok((summary, SearchHit::from_row(&row)?))
        })
        .fetch_all(&mut *conn)
        .await?;
    let (total, more, Json(facets)) = match rows.first() {
        Some((summary, _)) => summary.clone(),
        // A page past the last hit: the summary alone.
        None => {
            let args = hit_arguments(tenant, cases, s, clauses, bound)?;
            sqlx::query_as_with::<_, Summary, _>(
                concat!(search_hits!(), search_summary!(), " SELECT total, more, facets FROM summary"),
                args,
            )
            .fetch_one(&mut *conn)
            .await?
        }
    };
    Ok(SearchPage { hits: rows.into_iter().map(|(_, hit)| hit).collect(), total, total_exact: !more, facets })
}

/// $1–$8 of `search_hits!`.
fn hit_arguments(
    tenant: &TenantId,
    cases: Option<&[String]>,
    s: &SearchQuery,
    clauses: &[ClauseQuery],
    bound: u32,
) -> Result<PgArguments, sqlx::Error> {
    let (tsqueries, excluded): (Vec<&str>, Vec<bool>) =
        clauses.iter().map(|c| (c.tsquery.as_str(), c.excluded)).unzip();
    let mut args = PgArguments::default();
    (|| {
        args.add(tsqueries)?;
        args.add(excluded)?;
        args.add(tenant.as_str().to_owned())?;
        args.add(cases.map(<[String]>::to_vec))?;
        args.add(s.case_id.clone())?;
        args.add(s.tag.clone())?;
        args.add(s.media_type.clone())?;
        args.add(i32::try_from(bound).unwrap_or(i32::MAX))
    })()
    .map_err(sqlx::Error::Encode)?;
    Ok(args)
}

/// Analyze the evidence tables that changed by 50 rows and a tenth since their last analyze
/// (`analyze_stale_tables`, for servers without autovacuum); the names of those analyzed.
pub async fn analyze_stale_tables(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT analyze_stale_tables()").fetch_one(pool).await
}

/// Evidence per status over every tenant (for the `evidence_by_status` gauge), through the
/// view that the application role may read (it sees counts, not rows).
pub async fn status_counts<'e>(exec: impl PgExecutor<'e>) -> Result<Vec<(EvidenceStatus, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT status, evidence FROM evidence_status_counts").fetch_all(exec).await
}

/// The database answers (for `/ready`).
pub async fn ping<'e>(exec: impl PgExecutor<'e>) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(exec).await.map(|_| ())
}

/// The application role's identity, for the start-up check: whether it escapes row-level
/// security (superuser, BYPASSRLS, or owner of the evidence table).
pub async fn bypasses_row_security(conn: &mut PgConnection) -> Result<(String, bool), sqlx::Error> {
    sqlx::query_as(
        "SELECT current_user::text,
                r.rolsuper OR r.rolbypassrls
                  OR coalesce((SELECT pg_has_role(current_user, c.relowner, 'USAGE')
                               FROM pg_class c WHERE c.oid = to_regclass('evidence')), false)
         FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(conn)
    .await
}

/// Switch this session to `role` (what every connection of the API and the worker does first).
pub async fn set_role(conn: &mut PgConnection, role: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('role', $1, false)").bind(role).execute(conn).await.map(|_| ())
}

// --- API keys

/// A key that matched, as `authenticate_api_key` returns it.
#[derive(Debug, sqlx::FromRow)]
pub struct KeyMatch {
    pub key_id: Uuid,
    pub tenant_id: String,
    pub name: String,
    pub role: Role,
    pub case_ids: Option<Vec<String>>,
    pub revoked: bool,
}

/// The key with this prefix and hash, if any (and note its use).
pub async fn authenticate<'e>(
    exec: impl PgExecutor<'e>,
    prefix: &str,
    sha256: &[u8],
) -> Result<Option<KeyMatch>, sqlx::Error> {
    sqlx::query_as("SELECT key_id, tenant_id, name, role, case_ids, revoked FROM authenticate_api_key($1, $2)")
        .bind(prefix)
        .bind(sha256)
        .fetch_optional(exec)
        .await
}

/// Make the tenant if it is new (the database owner only).
pub async fn ensure_tenant(conn: &mut PgConnection, tenant: &TenantId) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO tenant (id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(tenant.as_str())
        .execute(conn)
        .await
        .map(|_| ())
}

const KEY_COLUMNS: &str =
    "id, tenant_id, prefix, name, role, case_ids, created_by, created_at, last_used_at, revoked_at";

/// A new key in `tenant`; its secret is in the answer and nowhere else.
pub async fn insert_key(
    conn: &mut PgConnection,
    tenant: &TenantId,
    new: &NewKey,
    created_by: Option<Uuid>,
) -> Result<IssuedKey, sqlx::Error> {
    let (prefix, secret, hash) = crate::keys::generate();
    let key = sqlx::query_as::<_, ApiKey>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO api_key (id, tenant_id, prefix, secret_sha256, name, role, case_ids, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING {KEY_COLUMNS}"
    )))
    .bind(Uuid::new_v4())
    .bind(tenant.as_str())
    .bind(&prefix)
    .bind(&hash)
    .bind(new.name.trim())
    .bind(new.role)
    .bind(&new.cases)
    .bind(created_by)
    .fetch_one(conn)
    .await?;
    Ok(IssuedKey { key, secret })
}

/// Which keys a listing or revoke reaches: one tenant's or (for the owner) every tenant's, and
/// with `within`, only keys limited to some of those cases (what an admin key limited to them
/// may manage).
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyScope<'a> {
    pub tenant: Option<&'a TenantId>,
    pub within: Option<&'a [String]>,
}

/// Keys, oldest first, in `scope`.
pub async fn list_keys<'e>(exec: impl PgExecutor<'e>, scope: KeyScope<'_>) -> Result<Vec<ApiKey>, sqlx::Error> {
    sqlx::query_as::<_, ApiKey>(sqlx::AssertSqlSafe(format!(
        "SELECT {KEY_COLUMNS} FROM api_key
         WHERE ($1::text IS NULL OR tenant_id = $1) AND ($2::text[] IS NULL OR case_ids <@ $2)
         ORDER BY tenant_id, created_at, id"
    )))
    .bind(scope.tenant.map(TenantId::as_str))
    .bind(scope.within)
    .fetch_all(exec)
    .await
}

/// Revoke the key with this prefix, in `scope`; a second revoke keeps the first time.
pub async fn revoke_key<'e>(
    exec: impl PgExecutor<'e>,
    prefix: &str,
    scope: KeyScope<'_>,
) -> Result<Option<ApiKey>, sqlx::Error> {
    sqlx::query_as::<_, ApiKey>(sqlx::AssertSqlSafe(format!(
        "UPDATE api_key SET revoked_at = coalesce(revoked_at, now())
         WHERE prefix = $1 AND ($2::text IS NULL OR tenant_id = $2) AND ($3::text[] IS NULL OR case_ids <@ $3)
         RETURNING {KEY_COLUMNS}"
    )))
    .bind(prefix)
    .bind(scope.tenant.map(TenantId::as_str))
    .bind(scope.within)
    .fetch_optional(exec)
    .await
}

// --- Fixity

/// Evidence of every tenant whose upload window closed more than `grace` ago (`expired`
/// false), then expired evidence whose staging object is still to delete (`expired` true).
pub async fn uploads_to_expire(
    pool: &PgPool,
    grace: std::time::Duration,
    limit: i64,
) -> Result<Vec<(String, Uuid, bool)>, sqlx::Error> {
    sqlx::query_as("SELECT tenant_id, id, expired FROM uploads_to_expire(make_interval(secs => $1), $2)")
        .bind(grace.as_secs_f64())
        .bind(limit as i32)
        .fetch_all(pool)
        .await
}

/// Mark evidence `expired` if it still awaits its upload and its window has closed (a complete
/// that took the row first wins); its object key when it did.
pub async fn mark_expired(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: EvidenceId,
) -> Result<Option<(String, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE evidence SET status = 'expired', updated_at = now(),
                             last_error = 'no upload was completed before the upload window closed'
         WHERE tenant_id = $1 AND id = $2 AND status = 'awaiting_upload' AND upload_expires_at < now()
         RETURNING object_key, upload_expires_at",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Record the multipart upload started for evidence still awaiting its upload, unless one
/// already is (a concurrent create with the same Idempotency-Key): the upload id it has.
pub async fn set_multipart(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: EvidenceId,
    upload_id: &str,
    part_bytes: u64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH set AS (
             UPDATE evidence SET upload_id = $3, upload_part_bytes = $4, updated_at = now()
             WHERE tenant_id = $1 AND id = $2 AND status = 'awaiting_upload' AND upload_id IS NULL
             RETURNING upload_id
         )
         SELECT upload_id FROM set
         UNION ALL
         SELECT upload_id FROM evidence WHERE tenant_id = $1 AND id = $2 AND NOT EXISTS (SELECT 1 FROM set)",
    )
    .bind(tenant.as_str())
    .bind(id)
    .bind(upload_id)
    .bind(part_bytes as i64)
    .fetch_optional(conn)
    .await
    .map(Option::flatten)
}

/// The staging object key (and multipart upload id, if any) of expired evidence not yet
/// purged, the row locked until the purge is recorded.
pub async fn expired_unpurged(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: EvidenceId,
) -> Result<Option<(String, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT object_key, upload_id FROM evidence
         WHERE tenant_id = $1 AND id = $2 AND status = 'expired' AND upload_purged_at IS NULL FOR UPDATE",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn mark_upload_purged(conn: &mut PgConnection, tenant: &TenantId, id: EvidenceId) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE evidence SET upload_purged_at = now() WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.as_str())
        .bind(id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Content of every tenant whose bytes are at their content key and were last checked (or
/// verified) longer than `older_than` ago, least recently checked first.
pub async fn fixity_due(
    pool: &PgPool,
    older_than: std::time::Duration,
    limit: i64,
) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT tenant_id, sha256, size_bytes FROM fixity_due(make_interval(secs => $1), $2)")
        .bind(older_than.as_secs_f64())
        .bind(limit as i32)
        .fetch_all(pool)
        .await
}

/// Record a fixity check of the tenant's bytes at `stored_key`: on the content, and on every
/// evidence stored there, whose ids it returns.
pub async fn record_fixity(
    conn: &mut PgConnection,
    tenant: &TenantId,
    sha256: &str,
    stored_key: &str,
    ok: bool,
) -> Result<Vec<EvidenceId>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH c AS (
             UPDATE content SET fixity_checked_at = now() WHERE tenant_id = $1 AND sha256 = $2
         )
         UPDATE evidence SET fixity_checked_at = now(), fixity_ok = $4
         WHERE tenant_id = $1 AND sha256 = $2 AND stored_key = $3
         RETURNING id",
    )
    .bind(tenant.as_str())
    .bind(sha256)
    .bind(stored_key)
    .bind(ok)
    .fetch_all(conn)
    .await
}

// --- Custody

/// Write `entry` in the caller's transaction, so the entry and the change it records commit or
/// roll back together; the sealer gives it its place in the tenant's chain once committed. The
/// statement is `custody_append`'s (which SQL triggers call), here as a statement of its own:
/// a prepared statement keeps its plan, the function's body is planned at every call.
pub async fn append_custody(
    conn: &mut PgConnection,
    tenant: &TenantId,
    entry: &NewEntry<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO custody_entry
             (tenant_id, evidence_id, event, actor_kind, actor_id, actor_name, request_id, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb::text)",
    )
    .bind(tenant.as_str())
    .bind(entry.evidence)
    .bind(entry.event.as_str())
    .bind(entry.actor.kind)
    .bind(&entry.actor.id)
    .bind(&entry.actor.name)
    .bind(entry.request_id)
    .bind(&entry.details)
    .execute(conn)
    .await
    .map(|_| ())
}

/// An entry with its place in the chain (`custody_link`, the sealer's), from `custody_entry e`
/// and `custody_link l`.
const CUSTODY_COLUMNS: &str = "e.tenant_id, l.seq, e.evidence_id, e.event, e.actor_kind, e.actor_id, e.actor_name, \
     e.request_id, l.at, e.details, l.prev_hash, l.hash";

/// An evidence's custody entries, oldest first.
pub async fn custody_of<'e>(
    exec: impl PgExecutor<'e>,
    tenant: &TenantId,
    evidence: EvidenceId,
) -> Result<Vec<Entry>, sqlx::Error> {
    sqlx::query_as::<_, Entry>(sqlx::AssertSqlSafe(format!(
        "SELECT {CUSTODY_COLUMNS} FROM custody_entry e LEFT JOIN custody_link l ON l.entry_id = e.id
         WHERE e.tenant_id = $1 AND e.evidence_id = $2
         ORDER BY l.seq NULLS LAST, e.id"
    )))
    .bind(tenant.as_str())
    .bind(evidence)
    .fetch_all(exec)
    .await
}

/// Check the tenant's whole chain, streaming its entries in order (memory does not grow with
/// its length), against the head the database recorded. The head, the last position linked and
/// the count of entries without a link are read at once; the walk stops at that last position,
/// so entries a seal links afterwards (with the head it moves) are left for the next
/// verification, while links past the recorded head (or with none recorded) are walked and
/// found out.
pub async fn verify_custody(conn: &mut PgConnection, tenant: &TenantId) -> Result<Verdict, sqlx::Error> {
    use futures_util::TryStreamExt;
    let (head_seq, head_hash, last_linked, pending): (Option<i64>, Option<String>, Option<i64>, i64) =
        sqlx::query_as(
            "SELECT (SELECT seq FROM custody_head WHERE tenant_id = $1), (SELECT hash FROM custody_head WHERE tenant_id = $1),
                    (SELECT max(seq) FROM custody_link WHERE tenant_id = $1),
                    (SELECT count(*) FROM custody_entry e WHERE e.tenant_id = $1
                     AND NOT EXISTS (SELECT 1 FROM custody_link l WHERE l.entry_id = e.id))",
        )
        .bind(tenant.as_str())
        .fetch_one(&mut *conn)
        .await?;
    let head = head_seq.zip(head_hash);
    let mut verifier = Verifier::default();
    let mut entries = sqlx::query_as::<_, Entry>(sqlx::AssertSqlSafe(format!(
        "SELECT {CUSTODY_COLUMNS} FROM custody_link l JOIN custody_entry e ON e.id = l.entry_id
         WHERE l.tenant_id = $1 AND l.seq <= $2
         ORDER BY l.seq"
    )))
    .bind(tenant.as_str())
    .bind(last_linked.unwrap_or(0))
    .fetch(&mut *conn);
    while let Some(entry) = entries.try_next().await? {
        verifier.push(&entry);
    }
    Ok(verifier.finish(head, pending))
}

/// What waits for the sealer, over every tenant (`custody_unsealed`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Unsealed {
    /// Committed entries not yet in a chain.
    pub waiting: i64,
    /// Of those, how many wait for a transaction still running on the server.
    pub held: i64,
    /// The oldest transaction running on the server, as `pg_stat_activity.backend_xid` shows it,
    /// when some are held.
    pub held_by: Option<String>,
}

pub async fn custody_unsealed<'e>(exec: impl PgExecutor<'e>) -> Result<Unsealed, sqlx::Error> {
    sqlx::query_as("SELECT waiting, held, held_by::text AS held_by FROM custody_unsealed()").fetch_one(exec).await
}

/// Seal committed entries into their tenants' chains, at most `max`; how many (0 also when
/// another sealer holds the starting point).
pub async fn seal_custody(pool: &PgPool, max: i32) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar::<_, i32>("SELECT custody_seal($1)").bind(max).fetch_one(pool).await.map(i64::from)
}
