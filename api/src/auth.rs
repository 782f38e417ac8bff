//! The API key every `/v1` operation takes (`Authorization: Bearer <key>`, the Authorize button
//! of Swagger UI), turned into the service's `Caller`.

use evidence::Caller;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use crate::AppState;
use crate::error::ApiError;

/// An API key, `evk_<prefix>_<secret>`. Operators make the first one with
/// `api keys create --tenant <tenant> --role admin --name <name>`; admin keys make more at
/// `POST /v1/keys`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", rename = "api_key", bearer_format = "evk_<prefix>_<secret>")]
pub struct ApiKey(Bearer);

impl ApiKey {
    /// The caller this key stands for (401 when there is none); its prefix and tenant go into
    /// the request's log lines.
    pub async fn caller(&self, state: &AppState) -> Result<Caller, ApiError> {
        let caller = state.service.authenticate(&self.0.token).await?;
        let span = tracing::Span::current();
        span.record("key", caller.key_prefix.as_str());
        span.record("tenant", caller.tenant.as_str());
        Ok(caller)
    }
}
