//! One LISTEN connection per worker process. Notifications are only a hint: each one naming the
//! worker's queue (and each reconnect) wakes the claim loops, which then claim from the table.
//! Wakeups coalesce in the watch channel: a burst of notifications leads to one claim round per
//! loop. A cancel notice (`store::cancel_notice`) stops the job it names if this worker runs it;
//! the heartbeat catches any cancel missed while disconnected.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::heartbeat::InFlightMap;
use crate::status::WorkerStatus;
use crate::store::cancelled_by_notice;
use crate::table::JobTable;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Where notifications go: wakeups to the claim loops, cancels to the running jobs.
pub(crate) struct Notices {
    pub wake: watch::Sender<u64>,
    pub inflight: InFlightMap,
}

pub(crate) async fn run(
    pool: PgPool,
    table: JobTable,
    queue: String,
    notices: Notices,
    status: Arc<WorkerStatus>,
    shutdown: CancellationToken,
) {
    let Notices { wake, inflight } = notices;
    let mut backoff = BACKOFF_MIN;
    let mut first = true;
    while !shutdown.is_cancelled() {
        match connect(&pool, &table).await {
            Ok(mut listener) => {
                status.listener_connected.store(true, Ordering::Release);
                if !first {
                    status.listener_reconnects.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("jobs_listener_reconnects_total").increment(1);
                    tracing::info!(queue, "listener reconnected");
                }
                first = false;
                backoff = BACKOFF_MIN;
                // Whatever was notified while we were away is found by this poll.
                wake.send_modify(|n| *n = n.wrapping_add(1));
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        received = listener.try_recv() => match received {
                            Ok(Some(n)) if n.payload() == queue => wake.send_modify(|n| *n = n.wrapping_add(1)),
                            Ok(Some(n)) => {
                                if let Some(id) = cancelled_by_notice(n.payload())
                                    && inflight.cancel(id)
                                {
                                    tracing::info!(job_id = id.0, "job cancelled by an operator; stopping it");
                                }
                            }
                            Ok(None) => {
                                tracing::warn!(queue, "listener connection lost");
                                break;
                            }
                            Err(e) => {
                                tracing::warn!(queue, error = %e, "listener failed");
                                break;
                            }
                        }
                    }
                }
                status.listener_connected.store(false, Ordering::Release);
            }
            Err(e) => {
                tracing::warn!(queue, error = %e, retry_in_ms = backoff.as_millis() as u64, "listener cannot connect");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

async fn connect(pool: &PgPool, table: &JobTable) -> Result<PgListener, sqlx::Error> {
    // A fresh listener per connection: after a loss we reconnect ourselves, with backoff and a
    // poll, instead of letting a later `try_recv` reconnect silently.
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(table.channel()).await?;
    Ok(listener)
}
