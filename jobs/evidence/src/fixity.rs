//! Fixity: stored bytes re-hashed periodically. One `fixity_sweep` job at a time (its unique key)
//! takes the content of every tenant whose last check is older than the interval, re-hashes each
//! object at its content key (at most `bytes_per_sec` on average), records the result on every
//! evidence with those bytes and in their custody, and, in its finishing transaction, enqueues
//! the next sweep: at once when there is more to check, else after the interval (at most an hour).
//! A mismatch is flagged on the evidence (`fixity_ok = false`), counted in
//! `evidence_integrity_failures_total{check="fixity"}` and logged at error level.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;

use queue::{Handler, JobArgs, JobContext, JobError, JobTable, KindOptions, Registry};

use crate::config::FixitySettings;
use crate::custody::{Actor, Event, NewEntry};
use crate::model::TenantId;
use crate::storage::{self, Storage, StorageError};
use crate::{store, sweep};

/// Content checked per sweep.
const BATCH: i64 = 100;

/// The unique key of the one active sweep.
const SWEEP_KEY: &str = "fixity-sweep";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FixitySweep {}

impl JobArgs for FixitySweep {
    const KIND: &'static str = "fixity_sweep";
}

#[derive(Debug, Clone)]
pub struct FixityHandler {
    pub pool: PgPool,
    pub storage: Arc<Storage>,
    pub jobs: JobTable,
    pub settings: Arc<FixitySettings>,
}

/// How long one sweep may run.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

/// Register the sweep on a worker's registry.
pub fn register_fixity(registry: &mut Registry, handler: FixityHandler) {
    registry.register(handler, KindOptions { timeout: JOB_TIMEOUT, ..KindOptions::default() });
}

/// Make sure a sweep is scheduled (each worker asks at start; the unique key keeps it to one).
pub async fn schedule_fixity(pool: &PgPool, jobs: &JobTable) -> Result<(), queue::Error> {
    sweep::schedule::<FixitySweep>(pool, jobs, SWEEP_KEY).await
}

impl Handler for FixityHandler {
    type Args = FixitySweep;

    async fn run(&self, ctx: JobContext, _args: FixitySweep) -> Result<(), JobError> {
        let interval = self.settings.interval;
        let due = store::fixity_due(&self.pool, interval, BATCH).await?;
        let actor = Actor::worker_job(ctx.id, "fixity sweep");
        for (tenant, sha256, size) in &due {
            if ctx.cancelled.is_cancelled() {
                return Err(JobError::retryable("the sweep was stopped"));
            }
            let started = Instant::now();
            let tenant = TenantId::new(tenant).map_err(|e| JobError::permanent(e.0))?;
            self.check(&tenant, sha256, &actor).await?;
            // On average no faster than the rate: a 1 GiB object at 50 MB/s takes ~21 s.
            let budget = Duration::from_secs_f64(*size as f64 / self.settings.bytes_per_sec.max(1) as f64);
            if let Some(rest) = budget.checked_sub(started.elapsed()) {
                tokio::time::sleep(rest).await;
            }
        }
        let next = if due.len() as i64 == BATCH { Duration::ZERO } else { interval.min(Duration::from_secs(3600)) };
        let mut tx = ctx.begin_finish().await?;
        let run_at = chrono::Utc::now() + next;
        queue::store::enqueue(&self.jobs, &mut *tx, &sweep::job::<FixitySweep>(SWEEP_KEY, run_at)).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl FixityHandler {
    /// Re-hash one tenant's stored bytes and record the result with every evidence that has them.
    async fn check(&self, tenant: &TenantId, sha256: &str, actor: &Actor) -> Result<(), JobError> {
        let key = storage::content_key(tenant, sha256);
        let found = match self.storage.hash_object(&key).await {
            Ok(d) => d.sha256,
            Err(StorageError::NotFound) => "missing".to_owned(),
            Err(e) => return Err(crate::ingest::storage_failure(format!("fixity check of {key}"), e)),
        };
        let ok = found == sha256;
        let mut tx = store::begin(&self.pool, tenant).await?;
        let evidence = store::record_fixity(&mut tx, tenant, sha256, &key, ok).await?;
        for id in &evidence {
            let details = json!({"ok": ok, "stored_key": key, "verified_sha256": sha256, "found_sha256": found});
            let entry = NewEntry { evidence: id.0, event: Event::FixityChecked, actor, request_id: None, details };
            store::append_custody(&mut tx, tenant, &entry).await?;
        }
        tx.commit().await?;
        if !ok {
            metrics::counter!("evidence_integrity_failures_total", "check" => "fixity").increment(1);
            tracing::error!(%tenant, key, verified = sha256, found, evidence = evidence.len(),
                "fixity check failed: stored bytes differ from the verified sha256");
        }
        Ok(())
    }
}
