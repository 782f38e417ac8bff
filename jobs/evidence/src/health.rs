//! `/health`, `/ready` and `/metrics`, decided once for both binaries. [`Probe`] says whether a
//! process is ready (the database answers; for a worker, its listener is connected too and its
//! breaker waits for no dependency) and
//! what to report; [`metrics_text`] renders the Prometheus page. The worker serves them with
//! [`serve`]; the API serves the same answers through its OpenAPI operations, so they stay in
//! its spec, or with [`serve`] on `API_OPS_BIND` when that is set.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{EndpointExt, IntoResponse, Response, Route, get, handler};
use queue::{JobTable, WorkerStatus};
use serde_json::json;

use crate::service::Service;

/// The worker-side facts a worker's probe also checks.
#[derive(Debug, Clone)]
pub struct WorkerFacts {
    pub status: Arc<WorkerStatus>,
    pub table: JobTable,
    pub queue: String,
}

/// What `/ready` checks.
#[derive(Debug, Clone)]
pub struct Probe {
    service: Service,
    worker: Option<WorkerFacts>,
}

/// The answer of one check. The fields after `database` are a worker's.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub ready: bool,
    pub database: bool,
    /// The LISTEN connection is up.
    pub listener: Option<bool>,
    pub queue: Option<String>,
    /// Jobs waiting in the worker's queue (None when the database did not answer).
    pub available_jobs: Option<i64>,
    /// The worker's queue is paused: it claims nothing, and is still ready (None when the
    /// database did not answer).
    pub paused: Option<bool>,
    pub last_completed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Dependencies the worker found unreachable and waits for, claiming nothing meanwhile
    /// (`object_store`, `database`); empty when it claims.
    pub waiting_for: Option<Vec<String>>,
}

impl Probe {
    /// The API's probe: the database.
    pub fn api(service: Service) -> Self {
        Self { service, worker: None }
    }

    /// A worker's probe: the database and its listener.
    pub fn worker(service: Service, facts: WorkerFacts) -> Self {
        Self { service, worker: Some(facts) }
    }

    pub async fn check(&self) -> Readiness {
        let Some(w) = &self.worker else {
            let database = self.service.database_ready().await;
            return Readiness {
                ready: database,
                database,
                listener: None,
                queue: None,
                available_jobs: None,
                paused: None,
                last_completed_at: None,
                waiting_for: None,
            };
        };
        let pool = &self.service.pool;
        let depth = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            tokio::try_join!(
                queue::store::available_count(&w.table, pool, &w.queue),
                queue::store::paused(&w.table, pool)
            )
        })
        .await;
        let (available_jobs, paused) = match depth {
            Ok(Ok((n, paused))) => (Some(n), Some(paused.iter().any(|p| p.queue == w.queue))),
            _ => (None, None),
        };
        let database = available_jobs.is_some();
        let listener = w.status.listener_connected();
        let waiting_for = w.status.waiting_for();
        Readiness {
            ready: database && listener && waiting_for.is_empty(),
            database,
            listener: Some(listener),
            queue: Some(w.queue.clone()),
            available_jobs,
            paused,
            last_completed_at: w.status.last_completed_at(),
            waiting_for: Some(waiting_for),
        }
    }
}

/// The Prometheus text page (empty when this process records no metrics).
pub fn metrics_text(metrics: Option<&PrometheusHandle>) -> String {
    metrics.map(crate::telemetry::render).unwrap_or_default()
}

#[derive(Clone)]
struct HealthState {
    probe: Probe,
    metrics: PrometheusHandle,
}

/// Serve [`routes`] on `listener` until `stop` (the worker's `WORKER_BIND`, the API's
/// `API_OPS_BIND`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    probe: Probe,
    metrics: PrometheusHandle,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    poem::Server::new_with_acceptor(poem::listener::TcpAcceptor::from_tokio(listener)?)
        .run_with_graceful_shutdown(routes(probe, metrics), stop.cancelled_owned(), None)
        .await
}

/// `/health`, `/ready` and `/metrics` as plain routes.
pub fn routes(probe: Probe, metrics: PrometheusHandle) -> impl poem::Endpoint {
    Route::new()
        .at("/health", get(health))
        .at("/ready", get(ready))
        .at("/metrics", get(metrics_page))
        .data(HealthState { probe, metrics })
}

#[handler]
fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

#[handler]
async fn ready(state: Data<&HealthState>) -> Response {
    let r = state.probe.check().await;
    let code = if r.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if r.ready { "ready" } else { "not_ready" },
        "database": r.database,
        "listener": r.listener,
        "queue": r.queue,
        "available_jobs": r.available_jobs,
        "paused": r.paused,
        "last_completed_at": r.last_completed_at,
        "waiting_for": r.waiting_for,
    });
    Json(body).with_status(code).into_response()
}

#[handler]
fn metrics_page(state: Data<&HealthState>) -> String {
    metrics_text(Some(&state.metrics))
}
