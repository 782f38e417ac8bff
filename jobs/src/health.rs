//! The worker's HTTP side: `/health` (the process is alive), `/ready` (database reachable and
//! listener connected; 503 otherwise) and `/metrics` (Prometheus text).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{EndpointExt, IntoResponse, Response, Route, get, handler};
use serde_json::json;
use sqlx::PgPool;

use crate::queue::WorkerStatus;

#[derive(Clone)]
struct HealthState {
    pool: PgPool,
    status: Arc<WorkerStatus>,
    queue: String,
    metrics: PrometheusHandle,
}

pub fn routes(
    pool: PgPool,
    status: Arc<WorkerStatus>,
    queue: String,
    metrics: PrometheusHandle,
) -> impl poem::Endpoint {
    Route::new()
        .at("/health", get(health))
        .at("/ready", get(ready))
        .at("/metrics", get(metrics_text))
        .data(HealthState { pool, status, queue, metrics })
}

#[handler]
fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

#[handler]
async fn ready(state: Data<&HealthState>) -> Response {
    let depth = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM job WHERE queue = $1 AND state = 'available'")
            .bind(&state.queue)
            .fetch_one(&state.pool),
    )
    .await;
    let (database, available) = match depth {
        Ok(Ok(n)) => (true, Some(n)),
        _ => (false, None),
    };
    let listener = state.status.listener_connected.load(Ordering::Acquire);
    let last = state.status.last_completed_unix_ms.load(Ordering::Relaxed);
    let last_completed_at = (last > 0).then(|| chrono::DateTime::from_timestamp_millis(last)).flatten();
    let ok = database && listener;
    let body = json!({
        "status": if ok { "ready" } else { "not_ready" },
        "database": database,
        "listener": listener,
        "queue": state.queue,
        "available_jobs": available,
        "last_completed_at": last_completed_at,
    });
    let code = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Json(body).with_status(code).into_response()
}

#[handler]
fn metrics_text(state: Data<&HealthState>) -> String {
    state.metrics.render()
}
