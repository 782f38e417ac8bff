//! One heartbeat per worker: every heartbeat interval, one statement renews the lease of every
//! job it runs; a job whose fence failed (rescued, cancelled) is told to stop. A job whose row is
//! locked (its finish is committing) is skipped, not waited for, and still counts as alive: no
//! slow finish can hold back the other leases.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::WorkerConfig;
use crate::job::JobId;
use crate::store;

/// A running job as the heartbeat sees it.
pub(crate) struct InFlight {
    pub token: Uuid,
    pub cancel: CancellationToken,
}

/// The jobs a worker runs right now, by id.
#[derive(Clone, Default)]
pub(crate) struct InFlightMap(Arc<Mutex<HashMap<JobId, InFlight>>>);

impl InFlightMap {
    pub fn insert(&self, id: JobId, job: InFlight) {
        self.0.lock().expect("inflight lock").insert(id, job);
    }

    pub fn remove(&self, id: JobId) {
        self.0.lock().expect("inflight lock").remove(&id);
    }

    /// Stop a job this worker runs (an operator cancelled it); `false` when it runs none such.
    pub fn cancel(&self, id: JobId) -> bool {
        let map = self.0.lock().expect("inflight lock");
        map.get(&id).inspect(|f| f.cancel.cancel()).is_some()
    }

    fn snapshot(&self) -> (Vec<JobId>, Vec<Uuid>) {
        self.0.lock().expect("inflight lock").iter().map(|(id, f)| (*id, f.token)).unzip()
    }

    /// Cancel the jobs of the snapshot that were not renewed, unless they were claimed again since.
    fn cancel_lost(&self, ids: &[JobId], tokens: &[Uuid], renewed: &[JobId]) {
        let map = self.0.lock().expect("inflight lock");
        for (id, token) in ids.iter().zip(tokens) {
            match map.get(id) {
                Some(f) if f.token == *token && !renewed.contains(id) => f.cancel.cancel(),
                _ => {}
            }
        }
    }
}

pub(crate) async fn run(pool: PgPool, config: WorkerConfig, inflight: InFlightMap, stop: CancellationToken) {
    // The first renewal one period after start: a job claimed now has a whole lease, and a tick
    // at start could renew a claim made moments later behind anyone's back (a test that expires
    // a lease by hand saw it renewed again by a heartbeat task that had started late).
    let period = config.heartbeat_interval();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (ids, tokens) = inflight.snapshot();
        if ids.is_empty() {
            continue;
        }
        match store::heartbeat(&config.table, &pool, &ids, &tokens, config.lease).await {
            Ok(beat) => {
                if !beat.skipped.is_empty() {
                    metrics::counter!("jobs_heartbeat_skipped_total").increment(beat.skipped.len() as u64);
                }
                if beat.held.len() < ids.len() {
                    inflight.cancel_lost(&ids, &tokens, &beat.held);
                }
            }
            Err(e) => tracing::warn!(error = %e, jobs = ids.len(), "heartbeat failed"),
        }
    }
}
