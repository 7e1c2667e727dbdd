//! Response building: JSON error bodies with their auth headers, and endpoints' fixed responses.

use std::sync::LazyLock;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::{Either, Full};

use crate::core::reject::{Limited, Reject};
use crate::core::route::FixedReply;
use crate::door::forward::DownstreamBody;

/// The front door's response body: a buffered one, or an upstream's streamed back.
pub type ResponseBody = Either<Full<Bytes>, DownstreamBody>;

/// The JSON error response for `reject`, with `WWW-Authenticate` as due, and on a 429
/// `Retry-After`, `RateLimit-Policy` and `RateLimit`, in a header map of its own.
pub fn error_response(reject: Reject) -> Response<ResponseBody> {
    error_response_in(reject, HeaderMap::new())
}

/// [`error_response`], its header fields written into `headers` after emptying it: pass the
/// request's own map, so the answer reuses its storage (see [`fixed_response_in`]).
pub fn error_response_in(reject: Reject, headers: HeaderMap) -> Response<ResponseBody> {
    // Values made once: `HeaderValue::from_static` checks every byte when it runs.
    static APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
    static NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
    static CHALLENGES: LazyLock<Vec<Option<HeaderValue>>> = LazyLock::new(|| {
        Reject::ALL
            .iter()
            .map(|r| r.www_authenticate().map(HeaderValue::from_static))
            .collect()
    });
    let mut headers = emptied(headers);
    headers.append(CONTENT_TYPE, APPLICATION_JSON.clone());
    let status = reject.status();
    if heuristically_cacheable(status) {
        headers.append(CACHE_CONTROL, NO_STORE.clone());
    }
    if let Some(challenge) = &CHALLENGES[reject.index()] {
        // RFC 6750 §3.
        headers.append(WWW_AUTHENTICATE, challenge.clone());
    }
    if let Some((name, limited)) = reject.limited() {
        insert_rate_limit_fields(&mut headers, name, limited);
    }
    let mut response = Response::new(Either::Left(Full::new(Bytes::from_static(
        reject.body().as_bytes(),
    ))));
    *response.status_mut() = status;
    set_headers(&mut response, headers);
    response
}

/// Whether a cache may store a response with `status` that says nothing about its freshness
/// (RFC 9110 §15.1, RFC 9111 §4.2.2): of the statuses an error answer has, only 404 (and 405,
/// 410, 414, 501). Those carry `Cache-Control: no-store`, so that an endpoint added later is not
/// hidden behind a cached 404; the rest (400, 401, 403, 408, 413, 429, 431, 502-504) are never
/// stored without an explicit freshness, so the field would be bytes on every refusal for
/// nothing (Kong and Envoy send none on theirs).
fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 404 | 405 | 410 | 414 | 501)
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

/// An endpoint's fixed response, its header fields written into `headers` after emptying it.
///
/// Pass the request's own header map: hyper keeps a response's map once it has written it and
/// parses the connection's next request into it (hyper 1.x `proto/h1/conn.rs`,
/// `cached_headers`), so one map then serves every request and answer of a keep-alive
/// connection. A clone of the reply's map instead cost an allocation per answer, and its exact
/// capacity made the next request's parse grow it again (callgrind: about 600 instructions a
/// request together).
pub fn fixed_response_in(reply: &FixedReply, headers: HeaderMap) -> Response<ResponseBody> {
    let mut headers = emptied(headers);
    for (name, value) in &reply.headers {
        headers.append(name.clone(), value.clone());
    }
    let mut response = Response::new(Either::Left(Full::new(reply.body.clone())));
    *response.status_mut() = reply.status;
    set_headers(&mut response, headers);
    response
}

/// Puts `headers` into `response`, whose map is still the empty one `Response::new` made:
/// that map is forgotten rather than dropped, which is free of leaks because `HeaderMap::new`
/// does not allocate (its documented contract), and saves the drop of three empty vectors
/// (about 50 instructions an answer under callgrind).
fn set_headers(response: &mut Response<ResponseBody>, headers: HeaderMap) {
    forget_empty(std::mem::replace(response.headers_mut(), headers));
}

/// Forgets a header map that was never filled (`HeaderMap::new`, which does not allocate: its
/// documented contract) instead of dropping it, which saves the drop of three empty vectors.
pub fn forget_empty(headers: HeaderMap) {
    debug_assert!(headers.capacity() == 0);
    std::mem::forget(headers);
}

/// Largest header map (in fields it holds without growing) that an answer takes over from its
/// request: a request with many fields must not leave its connection holding a large map for
/// as long as it stays open.
pub const MAX_REUSED_CAPACITY: usize = 24;

/// `headers` emptied for an answer's fields; a new map instead when the request's has grown
/// past [`MAX_REUSED_CAPACITY`].
pub fn emptied(mut headers: HeaderMap) -> HeaderMap {
    if headers.capacity() > MAX_REUSED_CAPACITY {
        return HeaderMap::new();
    }
    headers.clear();
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_of(fields: usize) -> HeaderMap {
        let mut map = HeaderMap::new();
        for i in 0..fields {
            let name = HeaderName::from_bytes(format!("x-field-{i}").as_bytes()).unwrap();
            map.append(name, HeaderValue::from_static("v"));
        }
        map
    }

    #[test]
    fn a_small_map_is_emptied_and_kept_a_large_one_replaced() {
        let small = map_of(3);
        let capacity = small.capacity();
        let emptied_small = emptied(small);
        assert!(emptied_small.is_empty());
        assert_eq!(emptied_small.capacity(), capacity);

        let large = map_of(40);
        assert!(large.capacity() > MAX_REUSED_CAPACITY);
        let emptied_large = emptied(large);
        assert!(emptied_large.is_empty());
        assert_eq!(emptied_large.capacity(), 0);
    }

    #[test]
    fn answers_hold_only_their_own_fields() {
        let reply = error_response_in(Reject::InvalidToken, map_of(5));
        let names: Vec<&str> = reply.headers().keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["content-type", "www-authenticate"]);
    }

    #[test]
    fn only_a_cacheable_status_says_no_store() {
        let not_found = error_response(Reject::NotFound);
        assert_eq!(not_found.headers()[CACHE_CONTROL], "no-store");
        for reject in [
            Reject::InvalidToken,
            Reject::CollectionNotGranted,
            Reject::BadGateway,
            Reject::Unavailable,
        ] {
            let reply = error_response(reject);
            assert_eq!(reply.headers().get(CACHE_CONTROL), None, "{reject:?}");
        }
    }
}
