//! The HTTP API (poem + poem-openapi): evidence uploads, status, listing, search, health and
//! metrics, with Swagger UI at `/docs` and the spec at `/openapi.json`. HTTP only: requests
//! become calls to `evidence::Service`; domain logic and SQL live in the `evidence` crate.

mod auth;
pub mod cli;
mod custody;
mod error;
mod guard;
mod jobs;
mod keys;
mod ops;
mod v1;

use std::time::Instant;

use evidence::Service;
use evidence::health::Probe;
use evidence::telemetry::MetricsHandle;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route};
use poem_openapi::OpenApiService;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use error::{ApiError, ErrorBody};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub service: Service,
    pub probe: Probe,
    pub metrics: Option<MetricsHandle>,
    /// Browser origins allowed by CORS; empty: no CORS.
    pub cors_origins: Vec<String>,
    /// `/ready` and `/metrics` are served on `API_OPS_BIND`, not here.
    pub ops_elsewhere: bool,
}

impl AppState {
    pub fn new(service: Service, metrics: Option<MetricsHandle>) -> Self {
        Self { probe: Probe::api(service.clone()), service, metrics, cors_origins: Vec::new(), ops_elsewhere: false }
    }

    pub fn with_ops_elsewhere(self, elsewhere: bool) -> Self {
        Self { ops_elsewhere: elsewhere, ..self }
    }

    pub fn with_cors(self, origins: Vec<String>) -> Self {
        Self { cors_origins: origins, ..self }
    }
}

/// The request's id: the client's `x-request-id` when it sent a usable one, else a new UUID.
/// Stored with the evidence and its job, so worker logs for that job carry it too.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

type Apis = (v1::EvidenceApi, custody::CustodyApi, keys::KeysApi, jobs::JobsApi, ops::OpsApi);

fn openapi(public_url: &str) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (v1::EvidenceApi, custody::CustodyApi, keys::KeysApi, jobs::JobsApi, ops::OpsApi),
        "Evidence ingestion API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Upload evidence through presigned S3 URLs, follow it until it is verified and indexed, and \
             search it. Flow: POST /v1/evidence → PUT the bytes to upload.url with upload.headers → \
             POST /v1/evidence/{id}/complete → GET /v1/evidence/{id} until status is indexed → GET /v1/search. \
             Every /v1 operation needs an API key (Authorize: the key alone, without `Bearer`); its role \
             says what it may do, and it sees its own tenant only.",
    )
    .server(public_url)
}

/// Describe the API's own metrics to the installed recorder (`# HELP` lines). Call once, after
/// `evidence::telemetry::init`.
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(
        "http_requests_total",
        Unit::Count,
        "Requests answered, by method, route template (\"unmatched\" for unknown paths) and status."
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time from a request's arrival to its response's headers, by method and route template."
    );
}

/// The OpenAPI document as JSON (for snapshots and clients).
pub fn spec_json() -> String {
    openapi("http://127.0.0.1:8080").spec()
}

/// The whole application: API, Swagger UI, spec, request ids, JSON errors, metrics.
pub fn app(state: AppState, public_url: &str) -> impl Endpoint + use<> {
    let api = openapi(public_url);
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    // CORS answers preflights before anything else; with no origins configured it allows none.
    let cors = poem::middleware::Cors::new()
        .allow_origins(state.cors_origins.clone())
        .allow_methods([poem::http::Method::GET, poem::http::Method::POST])
        .allow_headers(["content-type", "idempotency-key", "x-request-id", "authorization"])
        .expose_headers(["x-request-id", "retry-after"]);
    let with_cors = !state.cors_origins.is_empty();
    let routes =
        Route::new().nest("/", api).nest("/docs", docs).at("/openapi.json", spec).data(state).around(request_context);
    if with_cors { routes.with(cors).boxed() } else { routes.boxed() }
}

const REQUEST_ID: &str = "x-request-id";

fn usable_request_id(value: &str) -> bool {
    !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// Request id, a span for every log line of the request, JSON errors, and request metrics.
async fn request_context<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| usable_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let route = route_label(&path);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        route = %route,
        key = tracing::field::Empty,
        tenant = tracing::field::Empty
    );
    let started = Instant::now();
    let mut resp = match guard::check_request(&mut req).await {
        Err(refused) => refused.into_response(),
        Ok(()) => match next.call(req).instrument(span.clone()).await {
            Ok(resp) => resp.into_response(),
            Err(err) => span.in_scope(|| error::from_poem(err)),
        },
    };
    guard::secure(&mut resp, &path);
    if resp.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED
        && let Some(allow) = allowed_methods(&route).and_then(|a| a.parse().ok())
    {
        resp.headers_mut().insert(poem::http::header::ALLOW, allow);
    }
    if let Ok(value) = id.parse() {
        resp.headers_mut().insert(REQUEST_ID, value);
    }
    let status = resp.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.to_string()).increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method.clone(), "route" => route.clone())
        .record(elapsed);
    span.in_scope(|| tracing::info!(status, elapsed_ms = elapsed * 1000.0, "request"));
    Ok(resp)
}

/// The route templates of the spec (`/v1/evidence/{id}/complete`, …) and their methods, read
/// from it once.
static ROUTES: std::sync::LazyLock<Vec<(String, Vec<String>)>> = std::sync::LazyLock::new(|| {
    let spec: serde_json::Value = serde_json::from_str(&spec_json()).expect("the spec is JSON");
    let mut routes: Vec<(String, Vec<String>)> = spec["paths"]
        .as_object()
        .map(|paths| {
            let methods = |ops: &serde_json::Value| {
                let mut methods: Vec<String> =
                    ops.as_object().map(|o| o.keys().map(|m| m.to_ascii_uppercase()).collect()).unwrap_or_default();
                methods.sort();
                methods
            };
            paths.iter().map(|(path, ops)| (path.clone(), methods(ops))).collect()
        })
        .unwrap_or_default();
    routes.push(("/openapi.json".into(), vec!["GET".into()]));
    routes
});

/// The methods a route template answers, for the `Allow` header of a 405.
fn allowed_methods(template: &str) -> Option<String> {
    ROUTES.iter().find(|(t, _)| t == template).map(|(_, methods)| methods.join(", "))
}

/// The metric label of a request: the template of the route it matched, `/docs` for Swagger UI,
/// or `unmatched`, so that labels stay as few as the routes whatever clients send.
fn route_label(path: &str) -> String {
    if path == "/docs" || path.starts_with("/docs/") {
        return "/docs".into();
    }
    let segments: Vec<&str> = path.split('/').collect();
    let matches = |template: &str| {
        let parts: Vec<&str> = template.split('/').collect();
        parts.len() == segments.len()
            && parts.iter().zip(&segments).all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
    };
    ROUTES.iter().find(|(t, _)| matches(t)).map(|(t, _)| t.clone()).unwrap_or_else(|| "unmatched".into())
}

/// Serve until `shutdown` is cancelled; in-flight requests finish first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    public_url: String,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = app(state, &public_url);
    poem::Server::new_with_acceptor(poem::listener::TcpAcceptor::from_tokio(listener)?)
        .run_with_graceful_shutdown(app, shutdown.cancelled_owned(), Some(std::time::Duration::from_secs(10)))
        .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn route_labels_hide_ids() {
        assert_eq!(
            super::route_label("/v1/evidence/0b8e4d5c-3a5e-4a8e-9a57-1b2c3d4e5f60/complete"),
            "/v1/evidence/{id}/complete"
        );
        assert_eq!(super::route_label("/v1/search"), "/v1/search");
        assert_eq!(super::route_label("/docs/swagger-ui.css"), "/docs");
        assert_eq!(super::route_label("/metrics"), "/metrics");
        assert_eq!(super::allowed_methods("/v1/evidence").as_deref(), Some("GET, POST"));
        for unknown in ["/", "/v2/evidence", "/v1/evidence/x/y/z", "/wp-admin.php", "/docsx", "/v1/evidence//complete"]
        {
            assert_eq!(super::route_label(unknown), "unmatched", "{unknown}");
        }
    }

    #[test]
    fn request_ids_are_restricted_to_safe_characters() {
        assert!(super::usable_request_id("req-123_abc.def:9"));
        assert!(!super::usable_request_id("bad id"));
        assert!(!super::usable_request_id(""));
        assert!(!super::usable_request_id(&"x".repeat(129)));
    }
}
