//! The API key every `/v1` operation takes (`Authorization: Bearer <key>`, the Authorize button
//! of Swagger UI), turned into the service's `Caller` before the operation reads its path
//! parameters, query and body: a request without a valid key answers 401 whatever they hold.
//! Only the guard in front of every route (`guard::check_request`: body size, UTF-8, NUL
//! characters) and the router (an unknown path or method) answer before it.

use evidence::Caller;
use poem::IntoResponse;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use crate::AppState;
use crate::error::ApiError;

/// An API key, `evk_<prefix>_<secret>`. Operators make the first one with
/// `api keys create --tenant <tenant> --role admin --name <name>`; admin keys make more at
/// `POST /v1/keys`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", rename = "api_key", bearer_format = "evk_<prefix>_<secret>", checker = "check_key")]
pub struct ApiKey(Caller);

impl ApiKey {
    /// The caller this key stands for.
    pub fn caller(&self) -> &Caller {
        &self.0
    }
}

/// Runs as poem-openapi extracts the key, which every operation takes right after its state:
/// before its path, query and body are read. The key's prefix and tenant go into the request's
/// log lines. Errors are the API's own answers (401 with its challenge, 503 with `Retry-After`
/// while the database is unreachable).
async fn check_key(req: &poem::Request, bearer: Bearer) -> poem::Result<Caller> {
    let state = req.data::<AppState>().expect("the app's state is added to every route");
    match state.service.authenticate(&bearer.token).await {
        Ok(caller) => {
            let span = tracing::Span::current();
            span.record("key", caller.key_prefix.as_str());
            span.record("tenant", caller.tenant.as_str());
            Ok(caller)
        }
        Err(e) => Err(poem::Error::from_response(ApiError::from(e).into_response())),
    }
}
