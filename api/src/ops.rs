//! Operations endpoints: `/health` (alive), `/ready` (database reachable), `/metrics`. The
//! checks are `evidence::health`'s, which the worker serves too; here they are OpenAPI
//! operations so that they appear in the spec. With `API_OPS_BIND` set, `/ready` and `/metrics`
//! are served there (by `evidence::health::serve`) and answer 404 here. None needs an API key.

use evidence::health::metrics_text;
use poem::web::Data;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::AppState;
use crate::error::ErrorBody;

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
    /// `not_found`: served on `API_OPS_BIND` instead.
    #[oai(status = 404)]
    Elsewhere(Json<ErrorBody>),
}

#[derive(ApiResponse)]
pub enum MetricsResponse {
    #[oai(status = 200)]
    Page(PlainText<String>),
    /// `not_found`: served on `API_OPS_BIND` instead.
    #[oai(status = 404)]
    Elsewhere(Json<ErrorBody>),
}

fn elsewhere(what: &str) -> Json<ErrorBody> {
    Json(ErrorBody {
        code: "not_found".into(),
        message: format!("{what} is served on the operations address (API_OPS_BIND), not on the API's"),
    })
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
        if state.ops_elsewhere {
            return ReadyResponse::Elsewhere(elsewhere("/ready"));
        }
        let r = state.probe.check().await;
        let body = Json(Readiness { status: if r.ready { "ready" } else { "not_ready" }.into(), database: r.database });
        if r.ready { ReadyResponse::Ready(body) } else { ReadyResponse::NotReady(body) }
    }

    /// Prometheus metrics, text format.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self, state: Data<&AppState>) -> MetricsResponse {
        if state.ops_elsewhere {
            return MetricsResponse::Elsewhere(elsewhere("/metrics"));
        }
        MetricsResponse::Page(PlainText(metrics_text(state.metrics.as_ref())))
    }
}
