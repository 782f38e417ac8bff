//! The API's one error type: every failure is a JSON `{code, message}` with a 4xx/5xx status
//! listed in the OpenAPI spec. 5xx bodies say nothing internal; the log has the details.

use evidence::EvidenceError;
use evidence::storage::StorageError;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// A stable, machine-readable code, e.g. `upload_missing`.
    pub code: String,
    /// What was wrong, for a person.
    pub message: String,
}

#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request could not be read (malformed JSON, a bad parameter).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The request conflicts with the evidence's current state.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The request was read but its values are not acceptable.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// A dependency (database, object store) is unavailable; retry later.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn body(code: &str, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody { code: code.to_owned(), message: message.into() })
}

impl ApiError {
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        ApiError::BadRequest(body(code, message))
    }

    pub fn unprocessable(code: &str, message: impl Into<String>) -> Self {
        ApiError::Unprocessable(body(code, message))
    }
}

impl From<EvidenceError> for ApiError {
    fn from(e: EvidenceError) -> Self {
        let message = e.to_string();
        match e {
            EvidenceError::NotFound(_) => ApiError::NotFound(body("not_found", message)),
            EvidenceError::Invalid(_) => ApiError::Unprocessable(body("invalid_request", message)),
            EvidenceError::IdempotencyMismatch(_) => ApiError::Conflict(body("idempotency_key_reused", message)),
            EvidenceError::UploadMissing { .. } => ApiError::Conflict(body("upload_missing", message)),
            EvidenceError::SizeMismatch { .. } => ApiError::Unprocessable(body("size_mismatch", message)),
            EvidenceError::WrongStatus { .. } => ApiError::Conflict(body("wrong_status", message)),
            EvidenceError::Storage(StorageError::Unavailable(detail)) => {
                tracing::warn!(error = detail, "object store unavailable");
                ApiError::Unavailable(body("storage_unavailable", "the object store is unavailable; retry later"))
            }
            EvidenceError::Storage(other) => {
                tracing::error!(error = %other, "object store error");
                ApiError::Internal(body("storage_error", "the object store refused the request; see the server log"))
            }
            ref db if db.database_unavailable() => {
                tracing::warn!(error = message, "database unavailable");
                ApiError::Unavailable(body("database_unavailable", "the database is unavailable; retry later"))
            }
            EvidenceError::JobActive(_) => ApiError::Conflict(body(
                "job_active",
                "an ingest job for this evidence is already active; wait for it to finish",
            )),
            EvidenceError::Db(_) | EvidenceError::Queue(_) => {
                tracing::error!(error = message, "internal error");
                ApiError::Internal(body("internal", "internal error; see the server log"))
            }
        }
    }
}

/// Errors raised by poem itself (unknown route, unparsable body or parameter) in the same JSON
/// shape as ours.
pub fn from_poem(err: poem::Error) -> poem::Response {
    use poem::IntoResponse;
    if err.is_from_response() {
        return err.into_response();
    }
    // poem-openapi names path parameters `param0`, `param1`… internally, and its message says so;
    // every path parameter of this API is an evidence id.
    if let Some(e) = err.downcast_ref::<poem_openapi::error::ParsePathError>() {
        let message = format!("the evidence id in the path must be a UUID ({})", e.reason);
        return ApiError::bad_request("invalid_id", message).into_response();
    }
    let status = err.status();
    let code = match status.as_u16() {
        400 => "bad_request",
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        s if s >= 500 => "internal",
        _ => "bad_request",
    };
    let message = if status.is_server_error() {
        tracing::error!(error = %err, "unhandled error");
        "internal error; see the server log".to_owned()
    } else {
        err.to_string()
    };
    poem::web::Json(serde_json::json!({ "code": code, "message": message })).with_status(status).into_response()
}
