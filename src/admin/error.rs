//! The admin API's answers: [`ApiError`] (status, error code, one sentence naming the field) and
//! the JSON responses every handler returns.

use std::fmt;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

use super::MAX_BODY_BYTES;
use crate::core::registry::BuildError;

/// The realm in `WWW-Authenticate`.
const REALM: &str = "Bearer realm=\"tokengate-admin\"";

/// An admin API error answer: status, SPEC error code and one sentence naming the field.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    status: StatusCode,
    /// The `error` member: `invalid_input`, `unauthorized`, `not_found`, …
    code: &'static str,
    /// The `message` member.
    message: String,
    /// For 405: the methods the resource allows.
    allow: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            allow: None,
        }
    }

    /// 400 `invalid_input`: `"<field>: <what is wrong>"`.
    pub fn invalid(field: &str, what: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!("{field}: {what}"),
        )
    }

    /// 409 `conflict`.
    pub fn conflict(message: &str) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 `internal`.
    pub fn internal(message: &str) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 503 `store_unavailable`: the change was not written, so it was not applied anywhere.
    pub fn store_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the store cannot be written right now, so the change was not applied; try again",
        )
    }

    pub(crate) fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub(crate) fn method_not_allowed(allow: &'static str) -> Self {
        ApiError {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("this resource allows only {allow}"),
            )
        }
    }

    pub(crate) fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        )
    }

    pub(crate) fn from_build(e: BuildError) -> Self {
        Self::invalid(&e.field, &e.message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The SPEC error code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The human sentence.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        let body = json!({"error": self.code, "message": self.message});
        let mut response = json_response(self.status, &body);
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = if self.message.starts_with("missing") {
                REALM.to_owned()
            } else {
                format!("{REALM}, error=\"invalid_token\"")
            };
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        }
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Responses may carry a freshly generated auth token or a portal key.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

pub(crate) fn no_content() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// 204 for a revoking DELETE: no body, so the propagation of SPEC §4 travels in the
/// `Tokengate-Propagation: applied=N, live=M` header.
pub(crate) fn no_content_after(propagation: &Value) -> Response<Full<Bytes>> {
    let mut response = no_content();
    let text = format!(
        "applied={}, live={}",
        propagation["applied"].as_u64().unwrap_or(0),
        propagation["live"].as_u64().unwrap_or(0)
    );
    if let Ok(value) = HeaderValue::from_str(&text) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("tokengate-propagation"), value);
    }
    response
}

/// `view` plus `"propagation":{"applied":N,"live":M}` (SPEC §4).
pub(crate) fn with_propagation(mut view: Value, propagation: Value) -> Value {
    if let Some(map) = view.as_object_mut() {
        map.insert("propagation".to_owned(), propagation);
    }
    view
}

pub(crate) type Handled = Result<Response<Full<Bytes>>, ApiError>;

pub(crate) fn ok(body: Value) -> Handled {
    Ok(json_response(StatusCode::OK, &body))
}

pub(crate) fn created(body: Value) -> Handled {
    Ok(json_response(StatusCode::CREATED, &body))
}
