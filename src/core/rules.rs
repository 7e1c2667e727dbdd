//! The rules of a collection and its endpoints, in one place: collection path, endpoint method
//! and path, upstream URL, fixed response status and headers.
//!
//! The admin API checks its input with these functions (and names the field in its 400), and the
//! route compiler ([`super::route`]) compiles stored endpoints with the same functions, so what
//! the API accepts is exactly what the data plane can route.

use std::collections::HashSet;

use http::uri::{Authority, Scheme};
use http::{HeaderName, HeaderValue, Method, StatusCode, Uri};

/// Longest collection path segment, in bytes.
pub const MAX_COLLECTION_PATH: usize = 64;
/// Longest endpoint path, in bytes.
pub const MAX_ENDPOINT_PATH: usize = 1024;
/// Longest upstream URL, in bytes.
pub const MAX_UPSTREAM: usize = 2048;
/// Methods an endpoint may have.
pub const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
/// Response headers a fixed response may not set: the server computes them.
pub const RESERVED_HEADERS: [&str; 5] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
];

/// What is wrong with a value, as the end of a sentence that starts with the field's name
/// (`"must start with /"`); the caller adds the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError(pub String);

impl RuleError {
    fn new(what: impl Into<String>) -> Self {
        RuleError(what.into())
    }
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RuleError {}

/// One segment of an endpoint path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A literal segment, matched byte for byte.
    Literal(Box<str>),
    /// A `:param` segment, matching any one non-empty segment.
    Param,
}

/// A checked endpoint path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPath {
    /// The segments (none for `/`).
    pub segments: Box<[Segment]>,
    /// The route shape: the path with every parameter name removed (`/a/:x` → `/a/:`), so two
    /// endpoints that would match the same requests compare equal.
    pub shape: String,
}

/// A parsed upstream URL.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `http` or `https` (verified with the platform's roots and `--upstream-ca-file`).
    pub scheme: Scheme,
    /// `host:port`.
    pub authority: Authority,
    /// The URL's path without a trailing `/`; the request's path after the collection is appended.
    pub base_path: Box<str>,
}

/// Checks a collection path: one URL segment of 1 to [`MAX_COLLECTION_PATH`] bytes from
/// `a-z`, `0-9` and `-`.
pub fn collection_path(text: &str) -> Result<(), RuleError> {
    let ok = !text.is_empty()
        && text.len() <= MAX_COLLECTION_PATH
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(RuleError::new(format!(
            "must be one URL segment of 1 to {MAX_COLLECTION_PATH} characters from a-z, 0-9 and -"
        )))
    }
}

/// Checks an endpoint method (any case) against [`METHODS`]; returns it upper-cased.
pub fn method(text: &str) -> Result<Method, RuleError> {
    let upper = text.to_ascii_uppercase();
    if !METHODS.contains(&upper.as_str()) {
        return Err(RuleError::new(format!(
            "must be one of {}",
            METHODS.join(", ")
        )));
    }
    Method::from_bytes(upper.as_bytes())
        .map_err(|_| RuleError::new(format!("must be one of {}", METHODS.join(", "))))
}

/// Checks an endpoint path (`/`, `/orders`, `/orders/:id/lines`): starts with `/`, at most
/// [`MAX_ENDPOINT_PATH`] bytes, no empty, `.` or `..` segments, literal segments of RFC 3986
/// unreserved characters, `:param` names of letters, digits and `_` (not starting with a digit),
/// each name once.
pub fn endpoint_path(text: &str) -> Result<EndpointPath, RuleError> {
    let Some(rest) = text.strip_prefix('/') else {
        return Err(RuleError::new("must start with /"));
    };
    if text.len() > MAX_ENDPOINT_PATH {
        return Err(RuleError::new(format!(
            "must be at most {MAX_ENDPOINT_PATH} characters"
        )));
    }
    if rest.is_empty() {
        return Ok(EndpointPath {
            segments: Box::new([]),
            shape: "/".to_owned(),
        });
    }
    let mut shape = String::with_capacity(text.len());
    let mut segments = Vec::new();
    let mut params = HashSet::new();
    for segment in rest.split('/') {
        shape.push('/');
        if let Some(param) = segment.strip_prefix(':') {
            let valid = param
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && param
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(RuleError::new(format!(
                    "parameter {segment:?} must be : followed by a name of letters, digits and _"
                )));
            }
            if !params.insert(param) {
                return Err(RuleError::new(format!(
                    "parameter {segment:?} appears twice"
                )));
            }
            shape.push(':');
            segments.push(Segment::Param);
        } else {
            if segment.is_empty() {
                return Err(RuleError::new(
                    "must not contain empty segments (// or a trailing /)",
                ));
            }
            if segment == "." || segment == ".." {
                return Err(RuleError::new("must not contain . or .. segments"));
            }
            if !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
            {
                return Err(RuleError::new(format!(
                    "segment {segment:?} may hold only letters, digits and . _ ~ - (or be a :param)"
                )));
            }
            shape.push_str(segment);
            segments.push(Segment::Literal(segment.into()));
        }
    }
    Ok(EndpointPath {
        segments: segments.into(),
        shape,
    })
}

/// Checks and parses an upstream URL: absolute `http://` or `https://host[:port][/path]`, at most
/// [`MAX_UPSTREAM`] bytes, without user credentials, query or fragment.
pub fn upstream(text: &str) -> Result<Upstream, RuleError> {
    if text.len() > MAX_UPSTREAM {
        return Err(RuleError::new(format!(
            "must be at most {MAX_UPSTREAM} characters"
        )));
    }
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    let bad = || {
        RuleError::new(
            "must be an absolute http:// or https:// URL such as https://api.internal:8443/v1",
        )
    };
    let scheme = if lower.starts_with("https://") {
        Scheme::HTTPS
    } else if lower.starts_with("http://") {
        Scheme::HTTP
    } else {
        return Err(bad());
    };
    let uri: Uri = text.parse().map_err(|_| bad())?;
    let Some(authority) = uri.authority().cloned() else {
        return Err(bad());
    };
    if authority.as_str().contains('@') {
        return Err(RuleError::new("must not contain user credentials"));
    }
    if authority.host().is_empty() {
        return Err(bad());
    }
    if authority.as_str().contains(':')
        && !authority.as_str().ends_with(']')
        && authority.port_u16().is_none()
    {
        return Err(RuleError::new("has an invalid port"));
    }
    if uri.query().is_some() || text.contains('?') {
        return Err(RuleError::new("must not have a query string"));
    }
    if text.contains('#') {
        return Err(RuleError::new("must not have a fragment"));
    }
    Ok(Upstream {
        scheme,
        authority,
        base_path: uri.path().trim_end_matches('/').into(),
    })
}

/// Deepest nesting of arrays and objects in a fixed response's body. The stored state wraps the
/// body a few levels deeper, and it must stay well inside serde_json's 128-level read limit, or
/// the store could not read its own file back (found by the `admin_input` fuzz target).
pub const MAX_FIXED_BODY_DEPTH: usize = 64;

/// Checks a fixed response's JSON body: arrays and objects nested at most
/// [`MAX_FIXED_BODY_DEPTH`] levels.
pub fn fixed_body(body: &serde_json::Value) -> Result<(), RuleError> {
    fn depth(value: &serde_json::Value, limit: usize) -> bool {
        match value {
            serde_json::Value::Array(items) => {
                limit > 0 && items.iter().all(|v| depth(v, limit - 1))
            }
            serde_json::Value::Object(members) => {
                limit > 0 && members.values().all(|v| depth(v, limit - 1))
            }
            _ => true,
        }
    }
    if depth(body, MAX_FIXED_BODY_DEPTH) {
        Ok(())
    } else {
        Err(RuleError::new(format!(
            "must nest arrays and objects at most {MAX_FIXED_BODY_DEPTH} levels deep"
        )))
    }
}

/// Checks a fixed response's status: 200 to 599.
pub fn fixed_status(status: u64) -> Result<StatusCode, RuleError> {
    u16::try_from(status)
        .ok()
        .filter(|s| (200..=599).contains(s))
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| RuleError::new("must be an HTTP status from 200 to 599"))
}

/// Checks one fixed-response header: a valid name that is not in [`RESERVED_HEADERS`] and a
/// valid value. Returns the name lower-cased, as HTTP/1.1 sends it.
pub fn fixed_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), RuleError> {
    let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
        return Err(RuleError::new("is not a valid header name"));
    };
    if RESERVED_HEADERS.contains(&header.as_str()) {
        return Err(RuleError::new("is set by the server and cannot be given"));
    }
    let Ok(value) = HeaderValue::from_str(value) else {
        return Err(RuleError::new("is not a valid header value"));
    };
    Ok((header, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_paths_and_shapes() {
        assert_eq!(endpoint_path("/").unwrap().shape, "/");
        assert!(endpoint_path("/").unwrap().segments.is_empty());
        let orders = endpoint_path("/orders/:id").unwrap();
        assert_eq!(orders.shape, "/orders/:");
        assert_eq!(
            &*orders.segments,
            &[Segment::Literal("orders".into()), Segment::Param]
        );
        assert_eq!(
            endpoint_path("/v1.2/a_b~c-d/:x/:y").unwrap().shape,
            "/v1.2/a_b~c-d/:/:"
        );
        for bad in [
            "", "orders", "/orders/", "//", "/a//b", "/a/../b", "/./a", "/a b", "/a?b", "/:",
            "/:1a", "/:a/:a", "/%41",
        ] {
            assert!(endpoint_path(bad).is_err(), "{bad}");
        }
        assert!(endpoint_path(&format!("/{}", "a".repeat(MAX_ENDPOINT_PATH))).is_err());
    }

    #[test]
    fn upstreams_must_be_http_or_https_urls() {
        assert!(upstream("http://127.0.0.1:9000").is_ok());
        assert!(upstream("http://backend.internal/api/v2").is_ok());
        assert!(upstream("http://[::1]:8000/x").is_ok());
        let https = upstream("HTTPS://example.com/v1/").unwrap();
        assert_eq!(https.scheme, Scheme::HTTPS);
        assert_eq!(&*https.base_path, "/v1");
        let ftp = upstream("ftp://x").unwrap_err().0;
        assert!(ftp.contains("http:// or https://"), "{ftp}");
        for bad in [
            "https://",
            "https://user:pw@host/",
            "ftp://x",
            "example.com",
            "/relative",
            "http://",
            "http://user:pw@host/",
            "http://host/?q=1",
            "http://host/#frag",
            "http://host:99999/",
            "http://ho st/",
        ] {
            assert!(upstream(bad).is_err(), "{bad}");
        }
        let up = upstream("http://127.0.0.1:9000/base/").unwrap();
        assert_eq!(&*up.base_path, "/base");
        assert_eq!(up.authority.as_str(), "127.0.0.1:9000");
    }

    #[test]
    fn methods_collection_paths_and_fixed_parts() {
        assert_eq!(method("post").unwrap(), Method::POST);
        assert!(method("FETCH").unwrap_err().0.starts_with("must be one of"));
        assert!(method("G T").is_err());
        assert!(collection_path("shop-2").is_ok());
        for bad in [
            "",
            "Shop",
            "a/b",
            "_x",
            &"a".repeat(MAX_COLLECTION_PATH + 1),
        ] {
            assert!(collection_path(bad).is_err(), "{bad}");
        }
        assert_eq!(fixed_status(201).unwrap(), StatusCode::CREATED);
        for bad in [0, 199, 600, 70_000] {
            assert!(fixed_status(bad).is_err(), "{bad}");
        }
        assert_eq!(fixed_header("X-A", "b").unwrap().0.as_str(), "x-a");
        assert!(fixed_header("Content-Length", "1").is_err());
        assert!(fixed_header("bad name", "1").is_err());
        assert!(fixed_header("x-a", "bad\nvalue").is_err());
        let nest = |levels: usize| -> serde_json::Value {
            serde_json::from_str(&format!("{}{}", "[".repeat(levels), "]".repeat(levels))).unwrap()
        };
        assert!(fixed_body(&nest(MAX_FIXED_BODY_DEPTH)).is_ok());
        assert!(fixed_body(&nest(MAX_FIXED_BODY_DEPTH + 1)).is_err());
        assert!(fixed_body(&serde_json::json!({"a": {"b": [1, 2, {"c": null}]}})).is_ok());
    }
}
