//! Abandoned uploads expire. Each evidence gets an upload window at create
//! (`UPLOAD_EXPIRY_SECS`, `evidence.upload_expires_at`) and no presigned PUT outlives it. One
//! `upload_expiry_sweep` job at a time (its unique key), about once a minute, takes the evidence
//! of every tenant whose window closed more than [`GRACE`] ago and, in that tenant's transaction,
//! marks it `expired` with a custody entry; a complete that took the row first wins (both lock
//! it). Then it deletes the staging object and records that (`upload_purged_at`), so a sweep
//! stopped between the two finishes the delete next time. In its finishing transaction it
//! enqueues the next sweep: at once when the batch was full, else after [`INTERVAL`].

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;

use queue::{Handler, JobArgs, JobContext, JobError, JobTable, KindOptions, Registry};

use crate::custody::{Actor, Event, NewEntry};
use crate::model::{EvidenceId, TenantId};
use crate::storage::Storage;
use crate::{store, sweep};

/// Evidence handled per sweep.
const BATCH: i64 = 100;
/// Time between sweeps when there is nothing more to do.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// How long after the window closes the evidence is expired: room for clocks that differ
/// between the API that signed the last URL, the store that checks it, and the database.
pub const GRACE: Duration = Duration::from_secs(60);

/// The unique key of the one active sweep.
const SWEEP_KEY: &str = "upload-expiry-sweep";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UploadExpirySweep {}

impl JobArgs for UploadExpirySweep {
    const KIND: &'static str = "upload_expiry_sweep";
}

#[derive(Debug, Clone)]
pub struct ExpiryHandler {
    pub pool: PgPool,
    pub storage: Arc<Storage>,
    pub jobs: JobTable,
}

/// Register the sweep on a worker's registry.
pub fn register_expiry(registry: &mut Registry, handler: ExpiryHandler) {
    registry.register(handler, KindOptions::default());
}

/// Make sure a sweep is scheduled (each worker asks at start; the unique key keeps it to one).
pub async fn schedule_expiry(pool: &PgPool, jobs: &JobTable) -> Result<(), queue::Error> {
    sweep::schedule::<UploadExpirySweep>(pool, jobs, SWEEP_KEY).await
}

impl Handler for ExpiryHandler {
    type Args = UploadExpirySweep;

    async fn run(&self, ctx: JobContext, _args: UploadExpirySweep) -> Result<(), JobError> {
        let due = store::uploads_to_expire(&self.pool, GRACE, BATCH).await?;
        let actor = Actor::worker_job(ctx.id, "upload expiry sweep");
        for (tenant, id, already_expired) in &due {
            if ctx.cancelled.is_cancelled() {
                return Err(JobError::retryable("the sweep was stopped"));
            }
            let tenant = TenantId::new(tenant).map_err(|e| JobError::permanent(e.0))?;
            let id = EvidenceId(*id);
            if !already_expired && !self.expire(&tenant, id, &actor).await? {
                continue;
            }
            self.purge(&tenant, id).await?;
        }
        let full = due.len() as i64 >= BATCH;
        let next = if full { Duration::ZERO } else { INTERVAL };
        let mut tx = ctx.begin_finish().await?;
        queue::store::enqueue(
            &self.jobs,
            &mut *tx,
            &sweep::job::<UploadExpirySweep>(SWEEP_KEY, chrono::Utc::now() + next),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

impl ExpiryHandler {
    /// Mark one evidence expired, with its custody entry; false when it no longer awaits its
    /// upload (a complete came first).
    async fn expire(&self, tenant: &TenantId, id: EvidenceId, actor: &Actor) -> Result<bool, JobError> {
        let mut tx = store::begin(&self.pool, tenant).await?;
        let Some((key, window_closed_at)) = store::mark_expired(&mut tx, tenant, id).await? else {
            return Ok(false);
        };
        let details = json!({"upload_expires_at": window_closed_at, "object_key": key});
        let entry = NewEntry { evidence: id.0, event: Event::Expired, actor, request_id: None, details };
        store::append_custody(&mut tx, tenant, &entry).await?;
        tx.commit().await?;
        tracing::info!(%tenant, evidence_id = %id, "upload window closed without a completed upload; evidence expired");
        Ok(true)
    }

    /// Delete what was uploaded for expired evidence (and the parts of its multipart upload),
    /// and record that it was.
    async fn purge(&self, tenant: &TenantId, id: EvidenceId) -> Result<(), JobError> {
        let mut tx = store::begin(&self.pool, tenant).await?;
        let Some((key, upload_id)) = store::expired_unpurged(&mut tx, tenant, id).await? else {
            return Ok(());
        };
        if let Some(upload_id) = upload_id {
            self.storage
                .abort_multipart(&key, &upload_id)
                .await
                .map_err(|e| crate::ingest::storage_failure(format!("abort of expired upload {key}"), e))?;
        }
        self.storage
            .delete(&key)
            .await
            .map_err(|e| crate::ingest::storage_failure(format!("delete of expired upload {key}"), e))?;
        store::mark_upload_purged(&mut tx, tenant, id).await?;
        tx.commit().await?;
        Ok(())
    }
}
