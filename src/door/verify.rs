//! Forward-auth (SPEC §3 "Forward-auth mode"): another proxy asks whether a request may pass and
//! forwards it itself. `/_tokengate/verify[/<original path>]` answers like the data plane
//! (Traefik `forwardAuth`, Caddy `forward_auth`, Envoy `ext_authz`); `/_tokengate/auth-request`
//! answers only 200, 401 or 403 (nginx `auth_request`), the real status in
//! `X-Tokengate-Status`.
//!
//! The original method and URI come from `X-Forwarded-Method`/`X-Forwarded-Uri` (Traefik,
//! Caddy), `X-Original-Method`/`X-Original-URI` (nginx), or the request itself (Envoy: its
//! method, its path after `/_tokengate/verify`). It fails closed: no original URI, two sources
//! that disagree, or a dot-segment in the original URI is 403 `forbidden`.

use std::borrow::Cow;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::core::hygiene::normalize_path;
use crate::core::reject::{ForwardAuthError, Reject};

/// The forward-auth path for Traefik, Caddy and Envoy.
pub const VERIFY: &str = "/_tokengate/verify";
/// The forward-auth path for nginx `auth_request`.
pub const AUTH_REQUEST: &str = "/_tokengate/auth-request";

/// The error code of an `auth-request` denial.
pub static X_TOKENGATE_ERROR: HeaderName = HeaderName::from_static("x-tokengate-error");
/// The status the data plane would have answered, on an `auth-request` denial.
pub static X_TOKENGATE_STATUS: HeaderName = HeaderName::from_static("x-tokengate-status");

/// Which forward-auth flavour a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `/_tokengate/verify[/…]`: the data plane's statuses, bodies and headers.
    Verify,
    /// `/_tokengate/auth-request`: 200, 401 or 403 only.
    AuthRequest,
}

/// The flavour of a normalized request path, if it is a forward-auth path.
pub fn flavor(path: &str) -> Option<Flavor> {
    if path == AUTH_REQUEST {
        return Some(Flavor::AuthRequest);
    }
    match path.strip_prefix(VERIFY) {
        Some("") => Some(Flavor::Verify),
        Some(rest) if rest.starts_with('/') => Some(Flavor::Verify),
        _ => None,
    }
}

/// The original request a forward-auth request names: its method and normalized path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original<'a> {
    /// The original method.
    pub method: Method,
    /// The original path, normalized as the data plane normalizes (no query); borrowed from
    /// the request when normalization changed nothing.
    pub path: Cow<'a, str>,
}

/// The four headers that can name the original request, each at most once, as text.
#[derive(Default)]
struct Sources<'h> {
    forwarded_uri: Option<&'h str>,
    original_uri: Option<&'h str>,
    forwarded_method: Option<&'h str>,
    original_method: Option<&'h str>,
}

impl<'h> Sources<'h> {
    /// One pass over the request's headers (cheaper than four hashed lookups). A header sent
    /// twice is a conflict; a value that is not text is invalid.
    fn read(headers: &'h HeaderMap) -> Result<Sources<'h>, Reject> {
        let mut sources = Sources::default();
        for (name, value) in headers {
            let slot = match name.as_str() {
                "x-forwarded-uri" => &mut sources.forwarded_uri,
                "x-original-uri" => &mut sources.original_uri,
                "x-forwarded-method" => &mut sources.forwarded_method,
                "x-original-method" => &mut sources.original_method,
                _ => continue,
            };
            if slot.is_some() {
                return Err(Reject::ForwardAuth(ForwardAuthError::ConflictingOriginal));
            }
            let text = value
                .to_str()
                .map_err(|_| Reject::ForwardAuth(ForwardAuthError::BadOriginal))?;
            *slot = Some(text);
        }
        Ok(sources)
    }
}

/// Whether a raw path has a `.` or `..` segment, raw or percent-encoded (`%2e`, `.%2E`, …).
fn has_dot_segment(raw_path: &str) -> bool {
    raw_path.as_bytes().split(|&b| b == b'/').any(|segment| {
        let mut dots = 0;
        let mut rest = segment;
        while !rest.is_empty() && dots <= 2 {
            rest = match rest {
                [b'.', tail @ ..] => tail,
                [b'%', b'2', e, tail @ ..] if e.eq_ignore_ascii_case(&b'e') => tail,
                _ => return false,
            };
            dots += 1;
        }
        rest.is_empty() && (1..=2).contains(&dots)
    })
}

/// Checks one raw original URI (origin form, query allowed) and normalizes its path.
fn original_path(raw: &str) -> Result<Cow<'_, str>, Reject> {
    let end = raw.find(['?', '#']).unwrap_or(raw.len());
    let path = &raw[..end];
    if !path.starts_with('/') {
        return Err(Reject::ForwardAuth(ForwardAuthError::BadOriginal));
    }
    if has_dot_segment(path) {
        return Err(Reject::ForwardAuth(ForwardAuthError::DotSegment));
    }
    normalize_path(path).map_err(Reject::InvalidRequest)
}

/// Keeps the first value a source gave; a later source that gives another is a conflict.
fn agree<T: PartialEq>(slot: &mut Option<T>, value: T) -> Result<(), Reject> {
    match slot {
        Some(first) if *first != value => {
            Err(Reject::ForwardAuth(ForwardAuthError::ConflictingOriginal))
        }
        Some(_) => Ok(()),
        None => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// Reads the original request from a forward-auth request: `raw_path` is the request's path as
/// received (before normalization), `method` its method. Errors (all 403 `forbidden` but a path
/// the data plane would refuse, which is its 400): no original URI, sources that disagree, a
/// dot-segment, an invalid method or URI.
pub fn original<'a>(
    flavor: Flavor,
    method: &Method,
    raw_path: &'a str,
    headers: &'a HeaderMap,
) -> Result<Original<'a>, Reject> {
    let sources = Sources::read(headers)?;
    let mut path = None;
    for uri in [sources.forwarded_uri, sources.original_uri]
        .into_iter()
        .flatten()
    {
        agree(&mut path, original_path(uri)?)?;
    }
    if flavor == Flavor::Verify {
        // Envoy ext_authz: the original path follows the prefix (raw, so dot-segments show).
        let rest = raw_path
            .strip_prefix(VERIFY)
            .filter(|rest| rest.len() > 1 && rest.starts_with('/'));
        if let Some(rest) = rest {
            agree(&mut path, original_path(rest)?)?;
        }
    }
    let Some(path) = path else {
        return Err(Reject::ForwardAuth(ForwardAuthError::NoOriginalUri));
    };
    let mut original_method = None;
    for text in [sources.forwarded_method, sources.original_method]
        .into_iter()
        .flatten()
    {
        let parsed = Method::from_bytes(text.trim().as_bytes())
            .map_err(|_| Reject::ForwardAuth(ForwardAuthError::BadOriginal))?;
        agree(&mut original_method, parsed)?;
    }
    Ok(Original {
        // Envoy keeps the client's method on the check request.
        method: original_method.unwrap_or_else(|| method.clone()),
        path,
    })
}

/// The answer to a refused forward-auth request: for `verify`, the data plane's own error
/// response; for `auth-request`, the same body with status 401 or 403 only (anything else is
/// 403), plus `X-Tokengate-Error` and `X-Tokengate-Status` so nginx can restore the real status.
pub fn denial<B>(flavor: Flavor, reject: Reject, mut response: Response<B>) -> Response<B> {
    if flavor == Flavor::AuthRequest {
        let status = reject.status();
        if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
            *response.status_mut() = StatusCode::FORBIDDEN;
        }
        let headers = response.headers_mut();
        headers.insert(
            X_TOKENGATE_ERROR.clone(),
            HeaderValue::from_static(reject.code()),
        );
        headers.insert(
            X_TOKENGATE_STATUS.clone(),
            HeaderValue::from(status.as_u16()),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn fa(error: ForwardAuthError) -> Reject {
        Reject::ForwardAuth(error)
    }

    #[test]
    fn flavors() {
        assert_eq!(flavor("/_tokengate/verify"), Some(Flavor::Verify));
        assert_eq!(flavor("/_tokengate/verify/shop/a"), Some(Flavor::Verify));
        assert_eq!(flavor("/_tokengate/verifyx"), None);
        assert_eq!(
            flavor("/_tokengate/auth-request"),
            Some(Flavor::AuthRequest)
        );
        assert_eq!(flavor("/_tokengate/auth-request/x"), None);
    }

    #[test]
    fn reads_every_proxys_form() {
        let get = Method::GET;
        let traefik = headers(&[
            ("x-forwarded-method", "POST"),
            ("x-forwarded-uri", "/shop/orders?x=1"),
        ]);
        assert_eq!(
            original(Flavor::Verify, &get, VERIFY, &traefik).unwrap(),
            Original {
                method: Method::POST,
                path: Cow::Borrowed("/shop/orders")
            }
        );
        let nginx = headers(&[
            ("x-original-method", "DELETE"),
            ("x-original-uri", "/shop/%41"),
        ]);
        assert_eq!(
            original(Flavor::AuthRequest, &get, AUTH_REQUEST, &nginx).unwrap(),
            Original {
                method: Method::DELETE,
                path: Cow::Borrowed("/shop/A")
            }
        );
        let none = HeaderMap::new();
        let envoy = original(
            Flavor::Verify,
            &Method::PUT,
            "/_tokengate/verify/shop/1",
            &none,
        );
        assert_eq!(
            envoy.unwrap(),
            Original {
                method: Method::PUT,
                path: Cow::Borrowed("/shop/1")
            }
        );
    }

    #[test]
    fn dot_segments_raw_and_encoded() {
        for dotted in ["/.", "/..", "/a/%2e", "/a/%2E%2e/b", "/a/.%2e", "/a/./b"] {
            assert!(has_dot_segment(dotted), "{dotted}");
        }
        for plain in [
            "/",
            "/a/...",
            "/a/.x",
            "/a/%2e%2e%2e",
            "/a/a..",
            "/a/%2",
            "/a/%2f",
            "//",
        ] {
            assert!(!has_dot_segment(plain), "{plain}");
        }
    }

    #[test]
    fn fails_closed() {
        let get = Method::GET;
        let none = HeaderMap::new();
        assert_eq!(
            original(Flavor::Verify, &get, VERIFY, &none),
            Err(fa(ForwardAuthError::NoOriginalUri))
        );
        assert_eq!(
            original(Flavor::AuthRequest, &get, AUTH_REQUEST, &none),
            Err(fa(ForwardAuthError::NoOriginalUri))
        );
        // The path form is not read on auth-request.
        assert_eq!(
            original(Flavor::Verify, &get, "/_tokengate/verify/", &none),
            Err(fa(ForwardAuthError::NoOriginalUri))
        );
        let both = headers(&[
            ("x-forwarded-uri", "/shop/a"),
            ("x-original-uri", "/shop/b"),
        ]);
        assert_eq!(
            original(Flavor::Verify, &get, VERIFY, &both),
            Err(fa(ForwardAuthError::ConflictingOriginal))
        );
        let agree = headers(&[
            ("x-forwarded-uri", "/shop/%61"),
            ("x-original-uri", "/shop/a"),
        ]);
        assert!(
            original(Flavor::Verify, &get, VERIFY, &agree).is_ok(),
            "equal after normalization"
        );
        let twice = headers(&[("x-forwarded-uri", "/a"), ("x-forwarded-uri", "/b")]);
        assert_eq!(
            original(Flavor::Verify, &get, VERIFY, &twice),
            Err(fa(ForwardAuthError::ConflictingOriginal))
        );
        let methods = headers(&[
            ("x-forwarded-uri", "/a"),
            ("x-forwarded-method", "GET"),
            ("x-original-method", "POST"),
        ]);
        assert_eq!(
            original(Flavor::Verify, &get, VERIFY, &methods),
            Err(fa(ForwardAuthError::ConflictingOriginal))
        );
        for dotted in [
            "/shop/../admin",
            "/shop/./a",
            "/shop/%2e%2E/a",
            "/shop/.%2e",
            "/shop/%2E",
            "/shop/.",
            "/..",
        ] {
            let h = headers(&[("x-forwarded-uri", dotted)]);
            assert_eq!(
                original(Flavor::Verify, &get, VERIFY, &h),
                Err(fa(ForwardAuthError::DotSegment)),
                "{dotted}"
            );
        }
        assert_eq!(
            original(Flavor::Verify, &get, "/_tokengate/verify/shop/../x", &none),
            Err(fa(ForwardAuthError::DotSegment))
        );
        let relative = headers(&[("x-forwarded-uri", "shop/a")]);
        assert_eq!(
            original(Flavor::Verify, &get, VERIFY, &relative),
            Err(fa(ForwardAuthError::BadOriginal))
        );
        let slash = headers(&[("x-forwarded-uri", "/shop/a%2Fb")]);
        assert!(matches!(
            original(Flavor::Verify, &get, VERIFY, &slash),
            Err(Reject::InvalidRequest(_))
        ));
    }
}
