//! Response building: JSON error bodies with their auth headers, and endpoints' fixed responses.

use std::sync::LazyLock;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Response};
use http_body_util::{Either, Full};

use crate::core::reject::{Limited, Reject};
use crate::core::route::FixedReply;
use crate::door::forward::DownstreamBody;

/// The front door's response body: a buffered one, or an upstream's streamed back.
pub type ResponseBody = Either<Full<Bytes>, DownstreamBody>;

/// The JSON error response for `reject`, with `WWW-Authenticate` as due, and on a 429
/// `Retry-After`, `RateLimit-Policy` and `RateLimit`.
pub fn error_response(reject: Reject) -> Response<ResponseBody> {
    // Built once per code and cloned: three inserts into an empty map cost about three times
    // the clone (callgrind: 1 400 instructions for a 401), and floods of bad tokens land here.
    static HEADERS: LazyLock<Vec<HeaderMap>> =
        LazyLock::new(|| Reject::ALL.iter().map(|r| error_headers(*r)).collect());
    let mut response = Response::new(Either::Left(Full::new(Bytes::from_static(
        reject.body().as_bytes(),
    ))));
    *response.status_mut() = reject.status();
    *response.headers_mut() = HEADERS[reject.index()].clone();
    if let Some((name, limited)) = reject.limited() {
        insert_rate_limit_fields(response.headers_mut(), name, limited);
    }
    response
}

/// The fixed fields of `reject`'s answer: `Content-Type`, `Cache-Control: no-store` and, for
/// credential errors, the `WWW-Authenticate` challenge (RFC 6750 §3).
fn error_headers(reject: Reject) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(3);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(challenge) = reject.www_authenticate() {
        headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    headers
}

static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The fields of a 429: `Retry-After` (RFC 9110 §10.2.3), and `RateLimit-Policy` and
/// `RateLimit` as the IETF httpapi ratelimit-headers draft (-10) writes them: the policy's
/// name, its quota `q` per window `w` seconds, and `r=0` remaining with `t` seconds to reset.
fn insert_rate_limit_fields(headers: &mut HeaderMap, name: &str, limited: Limited) {
    headers.insert(RETRY_AFTER, HeaderValue::from(limited.retry_after_s));
    let policy = format!("\"{name}\";q={};w={}", limited.limit, limited.window_s);
    let state = format!("\"{name}\";r=0;t={}", limited.retry_after_s);
    for (field, value) in [(&RATELIMIT_POLICY, policy), (&RATELIMIT, state)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(field.clone(), value);
        }
    }
}

/// An endpoint's fixed response.
pub fn fixed_response(reply: &FixedReply) -> Response<ResponseBody> {
    let mut response = Response::new(Either::Left(Full::new(reply.body.clone())));
    *response.status_mut() = reply.status;
    *response.headers_mut() = reply.headers.clone();
    response
}
