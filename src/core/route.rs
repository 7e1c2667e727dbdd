//! Routing: `/<collection path><endpoint path>` to a compiled endpoint, with `:param` segments.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::core::model::{Endpoint, FixedResponse};
pub use crate::core::rules::Upstream;
use crate::core::rules::{self, Segment};

/// What a matched endpoint does.
#[derive(Debug)]
pub enum Action {
    /// Forward to an upstream URL.
    Upstream(Upstream),
    /// Answer with a fixed response.
    Fixed(FixedReply),
}

/// A prebuilt fixed response.
#[derive(Debug, Clone)]
pub struct FixedReply {
    /// Status code.
    pub status: StatusCode,
    /// Headers, `content-type: application/json` unless overridden.
    pub headers: HeaderMap,
    /// The JSON body, serialized once.
    pub body: Bytes,
}

/// One endpoint, ready to match.
#[derive(Debug)]
pub struct CompiledEndpoint {
    /// The endpoint's id.
    pub id: Box<str>,
    /// The endpoint's name.
    pub name: Box<str>,
    /// Its path as written, relative to the collection (`/orders/:id`), for the client portal.
    pub path: Box<str>,
    /// The method it answers.
    pub method: Method,
    /// Its path, split into segments.
    segments: Box<[Segment]>,
    /// Whether it is active (inactive endpoints answer 404).
    pub active: bool,
    /// What it does.
    pub action: Action,
}

/// The endpoints of one collection.
#[derive(Debug)]
pub struct CompiledCollection {
    /// Position in the snapshot; profiles grant collections by this index.
    pub index: u32,
    /// The collection's id.
    pub id: Box<str>,
    /// The collection's display name (set by [`CompiledCollection::named`]).
    pub name: Box<str>,
    /// The collection's URL segment (set by [`CompiledCollection::named`]).
    pub path: Box<str>,
    /// Endpoints without parameters, by path, then method (FNV-1a: looked up by every request,
    /// with keys only the operator chooses; SipHash cost ~150 instructions a request).
    exact: HashMap<Box<str>, Vec<(Method, usize)>, BuildHasherDefault<PathHasher>>,
    /// Every endpoint, in definition order.
    pub endpoints: Vec<CompiledEndpoint>,
}

/// FNV-1a (64-bit) for the routing maps (collections by the first path segment, endpoints by the
/// rest), looked up by every request: a few instructions for a short key where SipHash took ~300. Unkeyed is safe here:
/// requests only look keys up; the keys in the table are the operator's collection paths.
pub struct PathHasher(u64);

impl Default for PathHasher {
    fn default() -> Self {
        PathHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for PathHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Why an endpoint could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError {
    /// The offending field, relative to the endpoint.
    pub field: &'static str,
    /// One sentence.
    pub message: String,
}

impl CompiledCollection {
    /// Compiles the endpoints of a collection.
    pub fn build(
        index: u32,
        id: &str,
        endpoints: &[Endpoint],
    ) -> Result<Self, (usize, RouteError)> {
        let mut compiled = Vec::with_capacity(endpoints.len());
        let mut exact = HashMap::default();
        for (i, endpoint) in endpoints.iter().enumerate() {
            let endpoint = compile_endpoint(endpoint).map_err(|e| (i, e))?;
            if endpoint.segments.iter().all(|s| *s != Segment::Param) {
                exact
                    .entry(normalized_path(&endpoint.segments))
                    .or_insert_with(Vec::new)
                    .push((endpoint.method.clone(), i));
            }
            compiled.push(endpoint);
        }
        Ok(CompiledCollection {
            index,
            id: id.into(),
            name: "".into(),
            path: "".into(),
            exact,
            endpoints: compiled,
        })
    }

    /// The same collection labelled with its display `name` and URL segment `path` (what the
    /// client portal shows; routing itself goes by the snapshot's map key).
    pub fn named(mut self, name: &str, path: &str) -> Self {
        self.name = name.into();
        self.path = path.into();
        self
    }

    /// Finds the endpoint for `method` and `rest`, the path after the collection segment.
    pub fn find(&self, method: &Method, rest: &str) -> Option<&CompiledEndpoint> {
        self.endpoints.get(self.find_index(method, rest)?)
    }

    /// [`CompiledCollection::find`], as the endpoint's index in `endpoints`.
    pub fn find_index(&self, method: &Method, rest: &str) -> Option<usize> {
        let rest = trim_trailing_slash(rest);
        // Exact paths first: one hash lookup in the common case.
        if let Some(&(_, i)) = self
            .exact
            .get(rest)
            .and_then(|by_method| by_method.iter().find(|(m, _)| m == method))
        {
            return Some(i);
        }
        self.endpoints
            .iter()
            .position(|e| e.method == *method && segments_match(&e.segments, rest))
    }
}

/// Splits a request path into the collection segment and the rest (`""` → `/`).
pub fn split_collection(path: &str) -> Option<(&str, &str)> {
    let path = path.strip_prefix('/')?;
    // A byte scan: `str::find(char)` costs ~100 instructions of setup for these short paths.
    match path.bytes().position(|b| b == b'/') {
        Some(i) => Some((&path[..i], &path[i..])),
        None => Some((path, "/")),
    }
}

fn trim_trailing_slash(rest: &str) -> &str {
    match rest.strip_suffix('/') {
        Some(trimmed) if !trimmed.is_empty() => trimmed,
        _ => {
            if rest.is_empty() {
                "/"
            } else {
                rest
            }
        }
    }
}

fn normalized_path(segments: &[Segment]) -> Box<str> {
    let mut path = String::new();
    for segment in segments {
        path.push('/');
        if let Segment::Literal(text) = segment {
            path.push_str(text);
        }
    }
    if path.is_empty() {
        path.push('/');
    }
    path.into()
}

fn segments_match(segments: &[Segment], rest: &str) -> bool {
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    // "" has no segments at all (the endpoint path "/"), not one empty segment.
    let mut parts = rest.split('/').filter(|_| !rest.is_empty());
    for segment in segments {
        match (segment, parts.next()) {
            (Segment::Literal(want), Some(got)) if **want == *got => {}
            // Never `.` or `..`: normalization removes them, and a param must not be one anyway.
            (Segment::Param, Some(got)) if !got.is_empty() && got != "." && got != ".." => {}
            _ => return false,
        }
    }
    parts.next().is_none()
}

fn compile_endpoint(endpoint: &Endpoint) -> Result<CompiledEndpoint, RouteError> {
    let method = rules::method(&endpoint.method).map_err(|e| RouteError {
        field: "method",
        message: e.0,
    })?;
    let segments = rules::endpoint_path(&endpoint.path)
        .map_err(|e| RouteError {
            field: "path",
            message: e.0,
        })?
        .segments;
    let action = match (&endpoint.upstream, &endpoint.response) {
        (Some(url), None) => Action::Upstream(parse_upstream(url)?),
        (None, Some(response)) => Action::Fixed(build_fixed(response)?),
        _ => {
            return Err(RouteError {
                field: "upstream",
                message: "an endpoint needs exactly one of upstream and response".into(),
            })
        }
    };
    Ok(CompiledEndpoint {
        id: endpoint.id.as_str().into(),
        name: endpoint.name.as_str().into(),
        path: endpoint.path.as_str().into(),
        method,
        segments,
        active: endpoint.active,
        action,
    })
}

/// Parses an upstream URL with the same rules as the admin API ([`rules::upstream`]).
pub fn parse_upstream(url: &str) -> Result<Upstream, RouteError> {
    rules::upstream(url).map_err(|e| RouteError {
        field: "upstream",
        message: e.0,
    })
}

fn build_fixed(response: &FixedResponse) -> Result<FixedReply, RouteError> {
    let status = rules::fixed_status(u64::from(response.status)).map_err(|e| RouteError {
        field: "response.status",
        message: e.0,
    })?;
    rules::fixed_body(&response.body).map_err(|e| RouteError {
        field: "response.body",
        message: e.0,
    })?;
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in &response.headers {
        let (name, value) = rules::fixed_header(name, value).map_err(|e| RouteError {
            field: "response.headers",
            message: format!("{name:?} {}", e.0),
        })?;
        headers.insert(name, value);
    }
    let body = serde_json::to_vec(&response.body).map_err(|e| RouteError {
        field: "response.body",
        message: e.to_string(),
    })?;
    Ok(FixedReply {
        status,
        headers,
        body: Bytes::from(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(method: &str, path: &str) -> Endpoint {
        Endpoint {
            id: format!("{method}{path}"),
            name: "e".into(),
            method: method.into(),
            path: path.into(),
            upstream: None,
            response: Some(FixedResponse {
                status: 200,
                headers: Default::default(),
                body: serde_json::json!({"ok":true}),
            }),
            active: true,
        }
    }

    #[test]
    fn splits_collection_prefix() {
        assert_eq!(
            split_collection("/shop/orders/1"),
            Some(("shop", "/orders/1"))
        );
        assert_eq!(split_collection("/shop"), Some(("shop", "/")));
        assert_eq!(split_collection("shop"), None);
    }

    #[test]
    fn matches_exact_and_params() {
        let c = CompiledCollection::build(
            0,
            "c",
            &[
                endpoint("GET", "/orders"),
                endpoint("GET", "/orders/:id"),
                endpoint("post", "/orders/:id/items"),
                endpoint("GET", "/"),
            ],
        )
        .unwrap();
        let id = |m: Method, p: &str| c.find(&m, p).map(|e| e.id.to_string());
        assert_eq!(id(Method::GET, "/orders").as_deref(), Some("GET/orders"));
        assert_eq!(id(Method::GET, "/orders/").as_deref(), Some("GET/orders"));
        assert_eq!(
            id(Method::GET, "/orders/42").as_deref(),
            Some("GET/orders/:id")
        );
        assert_eq!(
            id(Method::POST, "/orders/42/items").as_deref(),
            Some("post/orders/:id/items")
        );
        assert_eq!(id(Method::GET, "/").as_deref(), Some("GET/"));
        assert_eq!(id(Method::POST, "/orders"), None);
        assert_eq!(id(Method::GET, "/orders//items"), None);
        assert_eq!(id(Method::GET, "/orders/42/items/9"), None);
        assert_eq!(id(Method::GET, "/orders/.."), None);
        assert_eq!(id(Method::GET, "/orders/."), None);
        assert_eq!(id(Method::GET, "/orders/.../items").as_deref(), None);
        assert_eq!(
            id(Method::POST, "/orders/.../items").as_deref(),
            Some("post/orders/:id/items")
        );
        assert_eq!(id(Method::GET, "/other"), None);
    }

    #[test]
    fn refuses_bad_endpoints() {
        assert_eq!(
            compile_endpoint(&endpoint("GET", "orders"))
                .unwrap_err()
                .field,
            "path"
        );
        assert_eq!(
            compile_endpoint(&endpoint("GET", "/a/:"))
                .unwrap_err()
                .field,
            "path"
        );
        assert_eq!(
            compile_endpoint(&endpoint("G T", "/a")).unwrap_err().field,
            "method"
        );
        let mut both = endpoint("GET", "/a");
        both.upstream = Some("http://127.0.0.1:1/x".into());
        assert_eq!(compile_endpoint(&both).unwrap_err().field, "upstream");
        assert_eq!(
            parse_upstream("https://example.com").unwrap().scheme,
            http::uri::Scheme::HTTPS
        );
        assert!(parse_upstream("ftp://example.com").is_err());
        let up = parse_upstream("http://127.0.0.1:9000/base/").unwrap();
        assert_eq!(&*up.base_path, "/base");
        assert_eq!(up.authority.as_str(), "127.0.0.1:9000");
    }
}
