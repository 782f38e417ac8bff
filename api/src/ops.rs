//! Operations endpoints: `/health` (alive), `/ready` (database reachable), `/metrics`. The
//! checks are `evidence::health`'s, which the worker serves too; here they are OpenAPI
//! operations so that they appear in the spec.

use evidence::health::metrics_text;
use poem::web::Data;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::AppState;

pub struct OpsApi;

#[derive(Debug, Object)]
pub struct Health {
    pub status: String,
}

#[derive(Debug, Object)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    pub database: bool,
}

#[derive(ApiResponse)]
pub enum ReadyResponse {
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// The database cannot be reached; the process keeps running and recovers by itself.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

#[OpenApi]
impl OpsApi {
    /// The process is alive.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self) -> Json<Health> {
        Json(Health { status: "ok".into() })
    }

    /// The database answers within 2 s.
    #[oai(path = "/ready", method = "get", operation_id = "ready")]
    async fn ready(&self, state: Data<&AppState>) -> ReadyResponse {
        let r = state.probe.check().await;
        let body = Json(Readiness { status: if r.ready { "ready" } else { "not_ready" }.into(), database: r.database });
        if r.ready { ReadyResponse::Ready(body) } else { ReadyResponse::NotReady(body) }
    }

    /// Prometheus metrics, text format.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self, state: Data<&AppState>) -> PlainText<String> {
        PlainText(metrics_text(state.metrics.as_ref()))
    }
}
