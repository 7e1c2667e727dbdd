//! The client portal (SPEC §3 "Client portal"): `GET /_tokengate/portal/<portal_key>` is the
//! client's page, `…/<portal_key>/openapi.json` its OpenAPI document, `/_tokengate/portal/assets/…`
//! the page's script, style sheet and icon, all compiled into the binary.
//!
//! - [`view`]: what the client may call, read from the live snapshot.
//! - [`page`]: the HTML (escaped; no inline script).
//! - [`openapi`]: the OpenAPI 3.0.3 document.
//!
//! A client is found by the SHA-256 digest of its portal key, never by comparing keys; an
//! unknown, rotated or disabled client's key gets one and the same 404.

pub mod openapi;
pub mod page;
pub mod view;

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use crate::core::registry::Snapshot;
use crate::core::token::token_digest;
use crate::portal::view::ClientView;

/// Path prefix of every portal URL.
pub const PREFIX: &str = "/_tokengate/portal/";
/// Path of the page's assets (script, style sheet, icon).
pub const ASSETS_PATH: &str = "/_tokengate/portal/assets";
/// Longest portal key looked up, in bytes (keys are 64 hex characters).
pub const MAX_KEY_BYTES: usize = 128;

/// The portal's Content-Security-Policy: everything from the page's own origin, no inline
/// script or style, no frames, no form posts, no `<base>`.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const SCRIPT: &str = include_str!("assets/portal.js");
const STYLE: &str = include_str!("assets/portal.css");
const ICON: &str = include_str!("assets/favicon.svg");

/// The answer to a request whose normalized `path` starts with [`PREFIX`]. `public_url` is the
/// data plane's public base URL without a trailing `/` (`--public-url`, never the request's
/// `Host`). Only GET and HEAD are answered (405 otherwise); anything unknown is 404 `not_found`.
pub fn answer(
    method: &Method,
    path: &str,
    snapshot: &Snapshot,
    public_url: &str,
) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        let mut response = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "the portal answers GET and HEAD only",
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let rest = path.strip_prefix(PREFIX).unwrap_or_default();
    match rest.split_once('/') {
        Some(("assets", "portal.js")) => asset("text/javascript; charset=utf-8", SCRIPT),
        Some(("assets", "portal.css")) => asset("text/css; charset=utf-8", STYLE),
        Some(("assets", "favicon.svg")) => asset("image/svg+xml", ICON),
        Some((key, "openapi.json")) => match client_view(key, snapshot) {
            Some(view) => {
                let document = openapi::document(&view, public_url);
                respond(
                    StatusCode::OK,
                    "application/json",
                    Bytes::from(serde_json::to_vec_pretty(&document).unwrap_or_default()),
                )
            }
            None => not_found(),
        },
        None => match client_view(rest, snapshot) {
            Some(view) => {
                let openapi_path = format!("{PREFIX}{rest}/openapi.json");
                let html = page::render(&view, public_url, &openapi_path);
                respond(
                    StatusCode::OK,
                    "text/html; charset=utf-8",
                    Bytes::from(html),
                )
            }
            None => not_found(),
        },
        Some(_) => not_found(),
    }
}

/// The view of the active client whose portal key is `key`.
fn client_view(key: &str, snapshot: &Snapshot) -> Option<ClientView> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return None;
    }
    let client = snapshot.portal_client(&token_digest(key.as_bytes()))?;
    client.active.then(|| ClientView::of(client, snapshot))
}

fn asset(content_type: &'static str, text: &'static str) -> Response<Full<Bytes>> {
    respond(
        StatusCode::OK,
        content_type,
        Bytes::from_static(text.as_bytes()),
    )
}

fn not_found() -> Response<Full<Bytes>> {
    error(StatusCode::NOT_FOUND, "not_found", "no such portal page")
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"error": code, "message": message}).to_string();
    respond(status, "application/json", Bytes::from(body))
}

/// A response with the portal's security headers (SPEC §3): CSP, `Referrer-Policy: no-referrer`
/// (the key is in the URL), `X-Frame-Options: DENY`, `Cache-Control: no-store`, `nosniff`.
fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    insert_security_headers(headers);
    response
}

/// Adds the portal's security headers to `headers` (also used for a portal URL the data plane
/// refused before the portal saw it: a bad path, headers too large, a stale node).
pub fn insert_security_headers(headers: &mut http::HeaderMap) {
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
}

/// `path` with a possible portal key removed, for log lines: everything after a `portal`
/// segment that follows a `_tokengate` one (compared after percent-decoding, so a raw path
/// refused before normalization is covered too) becomes `…`, unless it is exactly
/// `assets/<file>` with a plain file name.
pub fn redact_path(path: &str) -> Cow<'_, str> {
    // `_tokengate` is spelled with `_` or `%5F`: a path with neither has no portal key.
    if !path.bytes().any(|b| b == b'_' || b == b'%') {
        return Cow::Borrowed(path);
    }
    let segments: Vec<&str> = path.split('/').collect();
    let mut seen_reserved = false;
    for (i, segment) in segments.iter().enumerate() {
        let decoded = percent_decode_lossy(segment);
        if decoded.eq_ignore_ascii_case("_tokengate") {
            seen_reserved = true;
        } else if seen_reserved && decoded.eq_ignore_ascii_case("portal") {
            let rest = &segments[i + 1..];
            let plain_asset = matches!(rest, ["assets", file]
                if !file.is_empty() && file.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
                    && *file != "." && *file != "..");
            if rest.iter().all(|s| s.is_empty()) || plain_asset {
                return Cow::Borrowed(path);
            }
            return Cow::Owned(format!("{}/…", segments[..=i].join("/")));
        }
    }
    Cow::Borrowed(path)
}

fn percent_decode_lossy(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_portal_keys_in_log_paths() {
        assert_eq!(
            redact_path("/_tokengate/portal/abcd"),
            "/_tokengate/portal/…"
        );
        assert_eq!(
            redact_path("/_tokengate/portal/abcd/openapi.json"),
            "/_tokengate/portal/…"
        );
        assert_eq!(
            redact_path("/_tokengate/portal/assets/portal.js"),
            "/_tokengate/portal/assets/portal.js"
        );
        for sneaky in [
            "/_tokengate/portal/./abcd/%2F",
            "/_tokengate/portal//abcd%2F",
            "/_tokengate/portal/assets/../abcd%5C",
            "/_tokengate/portal/assets/abcd/x",
            "/%5Ftokengate/%70ortal/abcd%2F",
            "/_tokengate/x/../PORTAL/abcd",
        ] {
            let redacted = redact_path(sneaky);
            assert!(!redacted.contains("abcd"), "{sneaky} -> {redacted}");
            assert!(redacted.ends_with("/…"), "{sneaky} -> {redacted}");
        }
        assert_eq!(redact_path("/shop/portal/1"), "/shop/portal/1");
        assert_eq!(redact_path("/_tokengate/portal/"), "/_tokengate/portal/");
        assert_eq!(percent_decode_lossy("%4"), "%4");
        assert_eq!(percent_decode_lossy("a%41"), "aA");
    }
}
