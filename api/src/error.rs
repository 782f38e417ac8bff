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
    /// `unauthorized`: no API key, or one that is malformed, unknown or revoked. Send
    /// `Authorization: Bearer <key>`.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// The key may not do this: `role_not_allowed`; `case_out_of_scope` for evidence of a case
    /// the key is not limited to; `operator_only` for the queue operations of the operator tenant.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// `not_found`: no such evidence, key or job in the key's tenant.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The request conflicts with the current state of the evidence or job: `wrong_status`,
    /// `wrong_state`, `job_active`, `upload_missing`, `upload_expired`, `idempotency_key_reused`, `own_key`.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// `payload_too_large`: the request body is over 64 KiB (file bytes go to the upload URL).
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// `unsupported_media_type`: a body that is not `application/json`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// The request was read but its values are not acceptable: `invalid_request`, `unknown_field`,
    /// `invalid_utf8`, `invalid_text`, `size_mismatch`.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// A dependency (database, object store) is unavailable, or searches are at their limit
    /// (`search_busy`); retry after the seconds in `Retry-After`.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
}

/// The challenge of every 401 (RFC 6750).
pub const WWW_AUTHENTICATE: &str = "Bearer realm=\"evidence\"";

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECS: u32 = 1;

/// A JSON `{code, message}` answer with `status`, for the places that answer before an endpoint
/// (guards, poem's own errors).
pub fn json_error(status: poem::http::StatusCode, code: &str, message: impl Into<String>) -> poem::Response {
    use poem::IntoResponse;
    let mut resp = poem::web::Json(serde_json::json!({ "code": code, "message": message.into() }))
        .with_status(status)
        .into_response();
    if status == poem::http::StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert("retry-after", RETRY_AFTER_SECS.into());
    }
    resp
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

    pub fn unavailable(code: &str, message: impl Into<String>) -> Self {
        ApiError::Unavailable(body(code, message), RETRY_AFTER_SECS)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::Unauthorized(body("unauthorized", message), WWW_AUTHENTICATE.to_owned())
    }
}

impl From<EvidenceError> for ApiError {
    fn from(e: EvidenceError) -> Self {
        let message = e.to_string();
        match e {
            EvidenceError::NotFound(_) | EvidenceError::KeyNotFound(_) | EvidenceError::JobNotFound(_) => {
                ApiError::NotFound(body("not_found", message))
            }
            EvidenceError::JobWrongState(_) => ApiError::Conflict(body("wrong_state", message)),
            EvidenceError::JobKeyTaken => ApiError::Conflict(body("job_active", message)),
            EvidenceError::Unauthenticated(_) => ApiError::unauthorized(message),
            EvidenceError::Forbidden { code, .. } => ApiError::Forbidden(body(code, message)),
            EvidenceError::Invalid(_) => ApiError::Unprocessable(body("invalid_request", message)),
            EvidenceError::QueryEmpty(_) => ApiError::Unprocessable(body("query_empty", message)),
            EvidenceError::IdempotencyMismatch(_) => ApiError::Conflict(body("idempotency_key_reused", message)),
            EvidenceError::OwnKey => ApiError::Conflict(body("own_key", message)),
            EvidenceError::UploadMissing { .. } => ApiError::Conflict(body("upload_missing", message)),
            EvidenceError::UploadExpired { .. } => ApiError::Conflict(body("upload_expired", message)),
            EvidenceError::SizeMismatch { .. } => ApiError::Unprocessable(body("size_mismatch", message)),
            EvidenceError::PartsRequired { .. } => ApiError::Conflict(body("parts_required", message)),
            EvidenceError::NotMultipart { .. } => ApiError::Conflict(body("not_multipart", message)),
            EvidenceError::PartsRejected(_) => ApiError::Unprocessable(body("parts_rejected", message)),
            EvidenceError::WrongStatus { .. } => ApiError::Conflict(body("wrong_status", message)),
            EvidenceError::Storage(StorageError::Unavailable(detail)) => {
                tracing::warn!(error = detail, "object store unavailable");
                ApiError::unavailable("storage_unavailable", "the object store is unavailable; retry later")
            }
            EvidenceError::Storage(other) => {
                tracing::error!(error = %other, "object store error");
                ApiError::Internal(body("storage_error", "the object store refused the request; see the server log"))
            }
            ref db if db.database_unavailable() => {
                tracing::warn!(error = message, "database unavailable");
                ApiError::unavailable("database_unavailable", "the database is unavailable; retry later")
            }
            EvidenceError::SearchBusy => ApiError::unavailable(
                "search_busy",
                "too many searches are running, or this one took too long; retry shortly or narrow the query",
            ),
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
    use poem::http::StatusCode;
    if err.is_from_response() {
        return err.into_response();
    }
    // poem-openapi names path parameters `param0`, `param1`… internally, and its message says so;
    // this API's path parameters are evidence ids (UUIDs) and job ids (integers).
    if err.downcast_ref::<poem_openapi::error::AuthorizationError>().is_some() {
        return ApiError::unauthorized("an API key is required: send `Authorization: Bearer <key>`").into_response();
    }
    if let Some(e) = err.downcast_ref::<poem_openapi::error::ParsePathError>() {
        let message =
            format!("the id in the path is malformed: evidence ids are UUIDs, job ids are integers ({})", e.reason);
        return ApiError::bad_request("invalid_id", message).into_response();
    }
    if let Some(e) = err.downcast_ref::<poem_openapi::error::ParseRequestPayloadError>() {
        // A field the schema does not have is refused, not ignored: a misspelt `sha_256` would
        // otherwise leave the upload without its checksum pinned.
        if let Some(field) = e.reason.split("unknown field `").nth(1).and_then(|rest| rest.split('`').next()) {
            let message = format!("unknown field `{field}` in the request body; see the schema at /openapi.json");
            return json_error(StatusCode::UNPROCESSABLE_ENTITY, "unknown_field", message);
        }
        // A value the schema's rules refuse (a length, a pattern, a minimum).
        if e.reason.contains("verification failed") {
            // "failed to parse \"X\": field `f` verification failed. pattern(\"…\")": name the
            // field and the rule, not the regular expression.
            let rule = e.reason.split("verification failed. ").nth(1).unwrap_or_default();
            let field = e.reason.split("field `").nth(1).and_then(|r| r.split('`').next()).unwrap_or("a field");
            let rule = if rule.starts_with("pattern(") { "the pattern given for it in /openapi.json" } else { rule };
            let message = format!("field `{field}` does not meet {rule}");
            return json_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message);
        }
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the request body could not be read: {}", e.reason),
        );
    }
    if let Some(e) = err.downcast_ref::<poem_openapi::error::ParseParamError>() {
        let message = format!("query parameter `{}`: {}", e.name, e.reason);
        return json_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message);
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
    json_error(status, code, message)
}
