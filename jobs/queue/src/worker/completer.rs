//! Batched completion of effect-free successes: take one, then whatever else is already waiting,
//! and complete them in one fenced statement.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::job::JobId;
use crate::status::WorkerStatus;
use crate::store;
use crate::table::JobTable;

const ATTEMPTS: u32 = 5;

pub(crate) async fn complete_in_batches(
    pool: PgPool,
    table: JobTable,
    mut rx: mpsc::Receiver<(JobId, Uuid)>,
    max: usize,
    status: Arc<WorkerStatus>,
) {
    let mut batch = Vec::with_capacity(max);
    while rx.recv_many(&mut batch, max).await > 0 {
        let (ids, tokens): (Vec<JobId>, Vec<Uuid>) = batch.drain(..).unzip();
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=ATTEMPTS {
            match store::complete_many_if_running(&table, &pool, &ids, &tokens).await {
                Ok(done) => {
                    if !done.is_empty() {
                        status.record_completed();
                    }
                    if done.len() < ids.len() {
                        metrics::counter!("jobs_fenced_out_total", "kind" => "batch")
                            .increment((ids.len() - done.len()) as u64);
                        tracing::warn!(fenced_out = ids.len() - done.len(), "some completions lost their lease first");
                    }
                    break;
                }
                Err(e) if attempt < ATTEMPTS => {
                    tracing::warn!(error = %e, jobs = ids.len(), "batch completion failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    tracing::error!(error = %e, jobs = ids.len(), "batch completion failed; leases will expire and the jobs run again")
                }
            }
        }
    }
}
