//! What every request passes before an endpoint sees it, and what every answer carries:
//!
//! - a body of at most [`MAX_BODY_BYTES`] (413 otherwise), which must be UTF-8 (422);
//! - query parameters without NUL characters and in UTF-8 (422): Postgres refuses NUL in text,
//!   and a 500 is no answer to a client's typo;
//! - security headers: `X-Content-Type-Options: nosniff` everywhere, `Cache-Control: no-store`
//!   on API answers, and `frame-ancestors 'none'` where HTML is served (Swagger UI).

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Body, Request, Response};

use crate::error::json_error;

/// The largest request body accepted. The API's bodies are small JSON documents (a description
/// is at most 10,000 characters); the bytes of evidence go to the object store, never here.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why a request was refused before any endpoint saw it.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// The JSON `{code, message}` answer.
    pub fn into_response(self) -> Response {
        json_error(self.status, self.code, self.message)
    }
}

/// Read the body (bounded) and check the body and the query.
pub async fn check_request(req: &mut Request) -> Result<(), Refusal> {
    check_query(req.uri().query().unwrap_or_default())?;
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let body = req.take_body().into_bytes_limit(MAX_BODY_BYTES).await.map_err(|e| match e {
        poem::error::ReadBodyError::PayloadTooLarge => too_large(),
        other => {
            Refusal::new(StatusCode::BAD_REQUEST, "bad_request", format!("the request body could not be read: {other}"))
        }
    })?;
    if let Err(e) = std::str::from_utf8(&body) {
        return Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_utf8",
            format!("the request body is not valid UTF-8 (at byte {})", e.valid_up_to()),
        ));
    }
    req.set_body(Body::from_bytes(body));
    Ok(())
}

fn too_large() -> Refusal {
    Refusal::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body is larger than {MAX_BODY_BYTES} bytes; file bytes go to the presigned upload URL"),
    )
}

/// Every `name=value` of the query, percent-decoded: UTF-8 without NUL, or a 422 naming it.
fn check_query(query: &str) -> Result<(), Refusal> {
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name_bytes = decode(name);
        let shown = String::from_utf8_lossy(&name_bytes).into_owned();
        for (what, bytes) in [("name", name_bytes.clone()), ("value", decode(value))] {
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                Refusal::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_utf8",
                    format!("the {what} of query parameter {shown:?} is not valid UTF-8"),
                )
            })?;
            if text.contains('\0') {
                return Err(Refusal::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_text",
                    format!("the {what} of query parameter {shown:?} contains a NUL character"),
                ));
            }
        }
    }
    Ok(())
}

/// `application/x-www-form-urlencoded` decoding to bytes: `+` is a space, `%XX` a byte.
fn decode(part: &str) -> Vec<u8> {
    let spaced = part.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).collect()
}

/// The headers every answer carries; `path` tells the Swagger UI's pages from API answers.
pub fn secure(resp: &mut Response, path: &str) {
    let headers = resp.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let html =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("text/html"));
    if html {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("frame-ancestors 'none'"));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if !path.starts_with("/docs") {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_must_be_utf8_without_nul() {
        for ok in ["", "q=merger+globex", "q=%C3%A9t%C3%A9&limit=5", "flag", "q=a%26b"] {
            assert!(check_query(ok).is_ok(), "{ok}");
        }
        for (bad, status) in [("q=a%00b", 422), ("case_id=%FF", 422), ("%00=x", 422), ("q=%C3", 422)] {
            assert_eq!(check_query(bad).unwrap_err().status.as_u16(), status, "{bad}");
        }
    }
}
