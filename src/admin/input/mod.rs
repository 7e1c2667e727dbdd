//! Admin request bodies: parsed by hand from JSON so every 400 names the exact field (`endpoints[2].method`).
//!
//! Parsing here is pure: nothing looks at the current state except through the arguments. Checks
//! that need the state (unique collection paths, existing collection ids, profile counts) are made
//! by the handlers in [`super`]; checks that need key parsing (secret length, RSA modulus) are made
//! by [`crate::core::registry::Snapshot::build`].

use std::collections::{HashMap, HashSet};

use http::{HeaderName, HeaderValue, Uri};
use serde_json::{Map, Value};

use super::ApiError;
use crate::core::cidr::Cidr;
use crate::core::jwt::ClaimSet;
use crate::core::model::{
    AuthConfig, Collection, Endpoint, FixedResponse, JwtAlg, JwtConfig, Policy, RateLimit,
};

/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest collection path segment.
pub const MAX_COLLECTION_PATH: usize = 64;
/// Longest endpoint path.
const MAX_ENDPOINT_PATH: usize = 1024;
/// Longest upstream URL.
const MAX_UPSTREAM: usize = 2048;
/// Longest HS256 secret as pasted.
const MAX_SECRET: usize = 4096;
/// Longest RS256 public key text (a 16384-bit key in a certificate fits).
const MAX_PUBLIC_KEY: usize = 64 * 1024;
/// Longest accepted `leeway_s`: one hour; more makes `exp` meaningless.
const MAX_LEEWAY_S: u64 = 3600;
/// Longest accepted refresh `grace_s`: one week.
pub const MAX_GRACE_S: u64 = 604_800;
/// Methods an endpoint may have.
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
/// Claims `required_claims` may name (the ones the verifier knows how to check).
const CLAIMS: [&str; 6] = ClaimSet::NAMES;
/// Response headers a fixed response may not set: the server computes them.
const RESERVED_HEADERS: [&str; 5] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
];

/// A JSON object being read, with the dotted path that names it in error messages.
pub struct Obj<'a> {
    /// `""` for the body itself, else e.g. `endpoints[0]` or `auth`.
    path: String,
    /// The members.
    map: &'a Map<String, Value>,
}

impl<'a> Obj<'a> {
    /// `value` as an object whose members are all among `allowed`.
    pub fn new(value: &'a Value, path: &str, allowed: &[&str]) -> Result<Obj<'a>, ApiError> {
        let Some(map) = value.as_object() else {
            let what = if path.is_empty() { "body" } else { path };
            return Err(ApiError::invalid(what, "must be a JSON object"));
        };
        let obj = Obj {
            path: path.to_owned(),
            map,
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError::invalid(
                    &obj.field(key),
                    &format!("unknown field; expected one of {}", allowed.join(", ")),
                ));
            }
        }
        Ok(obj)
    }

    /// The full name of member `name`, for error messages.
    pub fn field(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// Member `name` as given, `null` included; `None` when absent.
    pub fn raw(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name)
    }

    /// Member `name` unless absent or `null`.
    pub fn present(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// A required string member.
    pub fn req_str(&self, name: &str) -> Result<&'a str, ApiError> {
        self.opt_str(name)?
            .ok_or_else(|| ApiError::invalid(&self.field(name), "is required"))
    }

    /// An optional string member (`null` is not a string).
    pub fn opt_str(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::invalid(&self.field(name), "must be a string")),
        }
    }

    /// An optional boolean member.
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::invalid(
                &self.field(name),
                "must be true or false",
            )),
        }
    }

    /// An optional non-negative whole number member.
    pub fn opt_u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                ApiError::invalid(&self.field(name), "must be a non-negative whole number")
            }),
        }
    }

    /// An optional array member (`null` counts as absent).
    pub fn opt_array(&self, name: &str) -> Result<Option<&'a Vec<Value>>, ApiError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(_) => Err(ApiError::invalid(&self.field(name), "must be an array")),
        }
    }
}

/// A display name: not blank, at most 200 characters, no control characters (names travel in
/// `X-Tokengate-*-Name` headers).
pub fn name(field: &str, text: &str) -> Result<String, ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if text.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid(
            field,
            &format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

/// A collection path: one URL segment of `[a-z0-9-]`, 1 to 64 characters.
pub fn collection_path(field: &str, text: &str) -> Result<String, ApiError> {
    let ok = !text.is_empty()
        && text.len() <= MAX_COLLECTION_PATH
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(ApiError::invalid(
            field,
            &format!(
                "must be one URL segment of 1 to {MAX_COLLECTION_PATH} characters from a-z, 0-9 and -"
            ),
        ));
    }
    Ok(text.to_owned())
}

/// The parts of a collection body, before ids and uniqueness are settled against the state.
#[derive(Debug)]
pub struct CollectionInput {
    /// Display name.
    pub name: String,
    /// URL segment.
    pub path: String,
    /// Endpoints; `id` is the id the body gave, if any.
    pub endpoints: Vec<(Option<String>, Endpoint)>,
}

/// Parses a collection body. `allow_id` admits an `id` member (for `PUT`, which must then name
/// the collection being replaced; checked by the caller).
pub fn collection(
    body: &Value,
    allow_id: bool,
) -> Result<(Option<String>, CollectionInput), ApiError> {
    let allowed: &[&str] = if allow_id {
        &["id", "name", "path", "endpoints"]
    } else {
        &["name", "path", "endpoints"]
    };
    let obj = Obj::new(body, "", allowed)?;
    let id = obj.opt_str("id")?.map(str::to_owned);
    let name = name("name", obj.req_str("name")?)?;
    let path = collection_path("path", obj.req_str("path")?)?;
    let mut endpoints = Vec::new();
    // Route shape (method + path with `:params` blanked) → index of the endpoint that has it.
    let mut routes: HashMap<(String, String), usize> = HashMap::new();
    for (i, item) in obj
        .opt_array("endpoints")?
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("endpoints[{i}]");
        let (given_id, endpoint, shape) = self::endpoint(item, &at)?;
        if let Some(first) = routes.insert((endpoint.method.clone(), shape), i) {
            return Err(ApiError::conflict(&format!(
                "{at}: {} {} is already defined by endpoints[{first}]",
                endpoint.method, endpoint.path
            )));
        }
        endpoints.push((given_id, endpoint));
    }
    Ok((
        id,
        CollectionInput {
            name,
            path,
            endpoints,
        },
    ))
}

/// Parses one endpoint; returns the given id (if any), the endpoint with an empty id, and its
/// route shape for duplicate detection.
fn endpoint(value: &Value, at: &str) -> Result<(Option<String>, Endpoint, String), ApiError> {
    let obj = Obj::new(
        value,
        at,
        &[
            "id", "name", "method", "path", "upstream", "response", "active",
        ],
    )?;
    let id = obj.opt_str("id")?.map(str::to_owned);
    let method_text = obj.req_str("method")?;
    let method = method_text.to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(ApiError::invalid(
            &obj.field("method"),
            &format!("must be one of {}", METHODS.join(", ")),
        ));
    }
    let path = obj.req_str("path")?;
    let shape = endpoint_path(&obj.field("path"), path)?;
    let name = match obj.opt_str("name")? {
        Some(text) => name(&obj.field("name"), text)?,
        None => format!("{method} {path}"),
    };
    let upstream = match obj.present("upstream") {
        None => None,
        Some(Value::String(url)) => Some(upstream(&obj.field("upstream"), url)?),
        Some(_) => {
            return Err(ApiError::invalid(
                &obj.field("upstream"),
                "must be a string",
            ))
        }
    };
    let response = match obj.present("response") {
        None => None,
        Some(v) => Some(fixed_response(v, &obj.field("response"))?),
    };
    match (&upstream, &response) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                at,
                "give either upstream or response, not both",
            ))
        }
        (None, None) => {
            return Err(ApiError::invalid(
                at,
                "needs an upstream URL or a fixed response",
            ))
        }
        _ => {}
    }
    let active = obj.opt_bool("active")?.unwrap_or(true);
    let endpoint = Endpoint {
        id: String::new(),
        name,
        method,
        path: path.to_owned(),
        upstream,
        response,
        active,
    };
    Ok((id, endpoint, shape))
}

/// Checks an endpoint path (`/`, `/orders`, `/orders/:id/lines`) and returns its route shape:
/// the path with every parameter name removed, so `/a/:x` and `/a/:y` compare equal.
pub fn endpoint_path(field: &str, text: &str) -> Result<String, ApiError> {
    let Some(rest) = text.strip_prefix('/') else {
        return Err(ApiError::invalid(field, "must start with /"));
    };
    if text.len() > MAX_ENDPOINT_PATH {
        return Err(ApiError::invalid(
            field,
            &format!("must be at most {MAX_ENDPOINT_PATH} characters"),
        ));
    }
    if rest.is_empty() {
        return Ok("/".to_owned());
    }
    let mut shape = String::with_capacity(text.len());
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
                return Err(ApiError::invalid(
                    field,
                    &format!("parameter {segment:?} must be : followed by a name of letters, digits and _"),
                ));
            }
            if !params.insert(param) {
                return Err(ApiError::invalid(
                    field,
                    &format!("parameter {segment:?} appears twice"),
                ));
            }
            shape.push(':');
        } else {
            if segment.is_empty() {
                return Err(ApiError::invalid(
                    field,
                    "must not contain empty segments (// or a trailing /)",
                ));
            }
            if segment == "." || segment == ".." {
                return Err(ApiError::invalid(
                    field,
                    "must not contain . or .. segments",
                ));
            }
            if !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
            {
                return Err(ApiError::invalid(
                    field,
                    &format!(
                        "segment {segment:?} may hold only letters, digits and . _ ~ - (or be a :param)"
                    ),
                ));
            }
            shape.push_str(segment);
        }
    }
    Ok(shape)
}

/// An upstream URL: absolute `http://host[:port][/path]`, without credentials, query or fragment.
pub fn upstream(field: &str, text: &str) -> Result<String, ApiError> {
    if text.len() > MAX_UPSTREAM {
        return Err(ApiError::invalid(
            field,
            &format!("must be at most {MAX_UPSTREAM} characters"),
        ));
    }
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(ApiError::invalid(
            field,
            "https upstreams are not supported yet; use an http:// URL (for example a local TLS sidecar)",
        ));
    }
    let bad = || {
        ApiError::invalid(
            field,
            "must be an absolute http:// URL such as http://10.0.0.5:8000/api",
        )
    };
    if !lower.starts_with("http://") {
        return Err(bad());
    }
    let uri: Uri = text.parse().map_err(|_| bad())?;
    let Some(authority) = uri.authority() else {
        return Err(bad());
    };
    if authority.as_str().contains('@') {
        return Err(ApiError::invalid(
            field,
            "must not contain user credentials",
        ));
    }
    if authority.host().is_empty() {
        return Err(bad());
    }
    if authority.as_str().contains(':')
        && !authority.as_str().ends_with(']')
        && authority.port_u16().is_none()
    {
        return Err(ApiError::invalid(field, "has an invalid port"));
    }
    if uri.query().is_some() || text.contains('?') {
        return Err(ApiError::invalid(field, "must not have a query string"));
    }
    if text.contains('#') {
        return Err(ApiError::invalid(field, "must not have a fragment"));
    }
    Ok(text.to_owned())
}

/// A fixed response: `{"status"?, "headers"?, "body"?}`.
fn fixed_response(value: &Value, at: &str) -> Result<FixedResponse, ApiError> {
    let obj = Obj::new(value, at, &["status", "headers", "body"])?;
    let status = match obj.opt_u64("status")? {
        None => 200,
        Some(s @ 200..=599) => s as u16,
        Some(_) => {
            return Err(ApiError::invalid(
                &obj.field("status"),
                "must be an HTTP status from 200 to 599",
            ))
        }
    };
    let mut headers = std::collections::BTreeMap::new();
    if let Some(given) = obj.present("headers") {
        let Some(map) = given.as_object() else {
            return Err(ApiError::invalid(
                &obj.field("headers"),
                "must be an object of header names to strings",
            ));
        };
        for (name, value) in map {
            let field = format!("{}.{name}", obj.field("headers"));
            let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
                return Err(ApiError::invalid(&field, "is not a valid header name"));
            };
            if RESERVED_HEADERS.contains(&header.as_str()) {
                return Err(ApiError::invalid(
                    &field,
                    "is set by the server and cannot be given",
                ));
            }
            let Some(text) = value.as_str() else {
                return Err(ApiError::invalid(&field, "must be a string"));
            };
            if HeaderValue::from_str(text).is_err() {
                return Err(ApiError::invalid(&field, "is not a valid header value"));
            }
            headers.insert(header.as_str().to_owned(), text.to_owned());
        }
    }
    let body = obj.raw("body").cloned().unwrap_or(Value::Null);
    Ok(FixedResponse {
        status,
        headers,
        body,
    })
}

/// Parses `auth`. `current` is the profile's auth on `PATCH`: a JWT auth with the same `alg` that
/// omits `secret` or `public_key` keeps the current one, so settings can be changed without
/// pasting the key again (the API never shows it).
pub fn auth(value: &Value, current: Option<&AuthConfig>) -> Result<AuthConfig, ApiError> {
    let kind = match value.as_object().and_then(|m| m.get("type")) {
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => {
            return Err(ApiError::invalid(
                "auth.type",
                "must be \"token\" or \"jwt\"",
            ))
        }
        None if value.is_object() => return Err(ApiError::invalid("auth.type", "is required")),
        None => return Err(ApiError::invalid("auth", "must be a JSON object")),
    };
    match kind {
        "token" => {
            Obj::new(value, "auth", &["type"])?;
            Ok(AuthConfig::Token)
        }
        "jwt" => jwt(value, current).map(AuthConfig::Jwt),
        _ => Err(ApiError::invalid(
            "auth.type",
            "must be \"token\" or \"jwt\"",
        )),
    }
}

fn jwt(value: &Value, current: Option<&AuthConfig>) -> Result<JwtConfig, ApiError> {
    let obj = Obj::new(
        value,
        "auth",
        &[
            "type",
            "alg",
            "secret",
            "secret_is_base64",
            "public_key",
            "required_claims",
            "max_lifetime_s",
            "allowed_issuers",
            "leeway_s",
        ],
    )?;
    let alg = match obj.req_str("alg")? {
        "HS256" => JwtAlg::HS256,
        "RS256" => JwtAlg::RS256,
        _ => {
            return Err(ApiError::invalid(
                "auth.alg",
                "must be \"HS256\" or \"RS256\"",
            ))
        }
    };
    let current = match current {
        Some(AuthConfig::Jwt(c)) if c.alg == alg => Some(c),
        _ => None,
    };
    let mut config = JwtConfig {
        alg,
        secret: None,
        secret_is_base64: false,
        public_key: None,
        required_claims: Vec::new(),
        max_lifetime_s: None,
        allowed_issuers: Vec::new(),
        leeway_s: None,
    };
    match alg {
        JwtAlg::HS256 => {
            if obj.raw("public_key").is_some() {
                return Err(ApiError::invalid(
                    "auth.public_key",
                    "is for RS256; HS256 takes a secret",
                ));
            }
            match obj.opt_str("secret")? {
                Some(secret) => {
                    if secret.is_empty() {
                        return Err(ApiError::invalid("auth.secret", "must not be empty"));
                    }
                    if secret.len() > MAX_SECRET {
                        return Err(ApiError::invalid(
                            "auth.secret",
                            &format!("must be at most {MAX_SECRET} bytes"),
                        ));
                    }
                    config.secret = Some(secret.to_owned());
                    config.secret_is_base64 = obj.opt_bool("secret_is_base64")?.unwrap_or(false);
                }
                None => match current {
                    Some(c) if c.secret.is_some() => {
                        config.secret.clone_from(&c.secret);
                        config.secret_is_base64 = obj
                            .opt_bool("secret_is_base64")?
                            .unwrap_or(c.secret_is_base64);
                    }
                    _ => return Err(ApiError::invalid("auth.secret", "is required for HS256")),
                },
            }
        }
        JwtAlg::RS256 => {
            for name in ["secret", "secret_is_base64"] {
                if obj.raw(name).is_some() {
                    return Err(ApiError::invalid(
                        &obj.field(name),
                        "is for HS256; RS256 takes a public_key",
                    ));
                }
            }
            match obj.opt_str("public_key")? {
                Some(key) => {
                    if key.trim().is_empty() {
                        return Err(ApiError::invalid("auth.public_key", "must not be empty"));
                    }
                    if key.len() > MAX_PUBLIC_KEY {
                        return Err(ApiError::invalid(
                            "auth.public_key",
                            &format!("must be at most {MAX_PUBLIC_KEY} bytes"),
                        ));
                    }
                    config.public_key = Some(key.to_owned());
                }
                None => match current {
                    Some(c) if c.public_key.is_some() => {
                        config.public_key.clone_from(&c.public_key)
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            "auth.public_key",
                            "is required for RS256",
                        ))
                    }
                },
            }
        }
    }
    for (i, claim) in obj
        .opt_array("required_claims")?
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("auth.required_claims[{i}]");
        match claim.as_str() {
            Some(c) if CLAIMS.contains(&c) => {
                if !config.required_claims.iter().any(|have| have == c) {
                    config.required_claims.push(c.to_owned());
                }
            }
            _ => {
                return Err(ApiError::invalid(
                    &field,
                    &format!("must be one of {}", CLAIMS.join(", ")),
                ))
            }
        }
    }
    if let Some(max) = obj.opt_u64("max_lifetime_s")? {
        if max == 0 {
            return Err(ApiError::invalid(
                "auth.max_lifetime_s",
                "must be at least 1",
            ));
        }
        config.max_lifetime_s = Some(max);
    }
    for (i, issuer) in obj
        .opt_array("allowed_issuers")?
        .into_iter()
        .flatten()
        .enumerate()
    {
        match issuer.as_str() {
            Some(iss) if !iss.is_empty() && iss.len() <= 1024 => {
                config.allowed_issuers.push(iss.to_owned())
            }
            _ => {
                return Err(ApiError::invalid(
                    &format!("auth.allowed_issuers[{i}]"),
                    "must be a non-empty string of at most 1024 bytes",
                ))
            }
        }
    }
    if let Some(leeway) = obj.opt_u64("leeway_s")? {
        if leeway > MAX_LEEWAY_S {
            return Err(ApiError::invalid(
                "auth.leeway_s",
                &format!("must be at most {MAX_LEEWAY_S} seconds"),
            ));
        }
        config.leeway_s = Some(leeway);
    }
    Ok(config)
}

/// Parses `policy` (`null` or `{}` → no policy).
pub fn policy(value: &Value) -> Result<Option<Policy>, ApiError> {
    if value.is_null() {
        return Ok(None);
    }
    let obj = Obj::new(value, "policy", &["rate_limit"])?;
    let Some(limit) = obj.present("rate_limit") else {
        return Ok(None);
    };
    let limit_obj = Obj::new(limit, "policy.rate_limit", &["requests", "per_s"])?;
    let mut numbers = [0u64; 2];
    for (slot, name) in numbers.iter_mut().zip(["requests", "per_s"]) {
        let field = limit_obj.field(name);
        match limit_obj.opt_u64(name)? {
            None => return Err(ApiError::invalid(&field, "is required")),
            Some(0) => return Err(ApiError::invalid(&field, "must be at least 1")),
            Some(n) => *slot = n,
        }
    }
    Ok(Some(Policy {
        rate_limit: Some(RateLimit {
            requests: numbers[0],
            per_s: numbers[1],
        }),
    }))
}

/// Parses `ip_allow` (`null` → empty) into canonical CIDR strings.
pub fn ip_allow(value: &Value) -> Result<Vec<String>, ApiError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => {
            return Err(ApiError::invalid(
                "ip_allow",
                "must be an array of CIDR blocks",
            ))
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("ip_allow[{i}]");
        let Some(text) = item.as_str() else {
            return Err(ApiError::invalid(
                &field,
                "must be a string such as \"10.0.0.0/8\"",
            ));
        };
        let cidr = Cidr::parse(text).map_err(|e| ApiError::invalid(&field, &e.to_string()))?;
        let canonical = cidr.to_string();
        if !out.contains(&canonical) {
            out.push(canonical);
        }
    }
    Ok(out)
}

/// Parses `collections`: an array of collection ids, each of which must satisfy `exists`.
/// Duplicates are dropped.
pub fn collection_ids(
    value: &Value,
    exists: impl Fn(&str) -> bool,
) -> Result<Vec<String>, ApiError> {
    let items = match value {
        Value::Array(items) => items,
        _ => {
            return Err(ApiError::invalid(
                "collections",
                "must be an array of collection ids",
            ))
        }
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("collections[{i}]");
        let Some(id) = item.as_str() else {
            return Err(ApiError::invalid(&field, "must be a collection id string"));
        };
        if !exists(id) {
            return Err(ApiError::invalid(&field, "no such collection"));
        }
        if !out.iter().any(|have| have == id) {
            out.push(id.to_owned());
        }
    }
    Ok(out)
}

/// Fills in endpoint ids for a collection: a given id must belong to `existing` (the collection
/// being replaced) and appear once; an endpoint without one gets `new_id()`.
pub fn assign_endpoint_ids(
    input: Vec<(Option<String>, Endpoint)>,
    existing: Option<&Collection>,
    mut new_id: impl FnMut() -> Result<String, ApiError>,
) -> Result<Vec<Endpoint>, ApiError> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(input.len());
    for (i, (given, mut endpoint)) in input.into_iter().enumerate() {
        endpoint.id = match given {
            Some(id) => {
                let known = existing.is_some_and(|c| c.endpoints.iter().any(|e| e.id == id));
                if !known {
                    return Err(ApiError::invalid(
                        &format!("endpoints[{i}].id"),
                        "no such endpoint in this collection (leave id out to add a new endpoint)",
                    ));
                }
                if !seen.insert(id.clone()) {
                    return Err(ApiError::invalid(
                        &format!("endpoints[{i}].id"),
                        "appears twice",
                    ));
                }
                id
            }
            None => new_id()?,
        };
        out.push(endpoint);
    }
    Ok(out)
}

/// Parses the optional refresh body `{"grace_s"?}`.
pub fn grace_s(body: Option<&Value>) -> Result<u64, ApiError> {
    let Some(body) = body else {
        return Ok(0);
    };
    let obj = Obj::new(body, "", &["grace_s"])?;
    match obj.opt_u64("grace_s")? {
        None => Ok(0),
        Some(n) if n <= MAX_GRACE_S => Ok(n),
        Some(_) => Err(ApiError::invalid(
            "grace_s",
            &format!("must be from 0 to {MAX_GRACE_S} seconds (one week)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(err: ApiError) -> String {
        err.message().to_owned()
    }

    #[test]
    fn endpoint_paths_and_shapes() {
        assert_eq!(endpoint_path("p", "/").unwrap(), "/");
        assert_eq!(endpoint_path("p", "/orders/:id").unwrap(), "/orders/:");
        assert_eq!(
            endpoint_path("p", "/v1.2/a_b~c-d/:x/:y").unwrap(),
            "/v1.2/a_b~c-d/:/:"
        );
        for bad in [
            "", "orders", "/orders/", "//", "/a//b", "/a/../b", "/./a", "/a b", "/a?b", "/:",
            "/:1a", "/:a/:a", "/%41",
        ] {
            let err = endpoint_path("endpoints[0].path", bad).unwrap_err();
            assert!(message(err).starts_with("endpoints[0].path: "), "{bad}");
        }
    }

    #[test]
    fn upstreams_must_be_plain_http_urls() {
        assert!(upstream("u", "http://127.0.0.1:9000").is_ok());
        assert!(upstream("u", "http://backend.internal/api/v2").is_ok());
        assert!(upstream("u", "http://[::1]:8000/x").is_ok());
        let https = message(upstream("u", "https://example.com").unwrap_err());
        assert!(
            https.contains("https upstreams are not supported yet"),
            "{https}"
        );
        for bad in [
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
            assert!(upstream("u", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn collection_bodies_name_the_bad_field() {
        let err = collection(&json!({"name":"x","path":"Bad"}), false).unwrap_err();
        assert!(message(err).starts_with("path: "));
        let err = collection(&json!({"path":"ok"}), false).unwrap_err();
        assert_eq!(message(err), "name: is required");
        let err = collection(&json!({"name":"x","path":"ok","extra":1}), false).unwrap_err();
        assert!(message(err).starts_with("extra: unknown field"));
        let err = collection(
            &json!({"name":"x","path":"ok","endpoints":[{"method":"GET","path":"/a","upstream":"http://h"},{"method":"FETCH","path":"/a","upstream":"http://h"}]}),
            false,
        )
        .unwrap_err();
        assert!(message(err).starts_with("endpoints[1].method: must be one of"));
        let err = collection(
            &json!({"name":"x","path":"ok","endpoints":[{"method":"get","path":"/a/:x","response":{}},{"method":"GET","path":"/a/:y","response":{}}]}),
            false,
        )
        .unwrap_err();
        assert_eq!(err.code(), "conflict");
        let err = collection(
            &json!({"name":"x","path":"ok","endpoints":[{"method":"GET","path":"/a"}]}),
            false,
        )
        .unwrap_err();
        assert!(message(err).starts_with("endpoints[0]: needs an upstream"));
        let (_, ok) = collection(
            &json!({"name":"x","path":"ok","endpoints":[{"method":"get","path":"/a","response":{"status":201,"headers":{"X-A":"b"},"body":[1]}}]}),
            false,
        )
        .unwrap();
        let ep = &ok.endpoints[0].1;
        assert_eq!(ep.method, "GET");
        assert_eq!(ep.name, "GET /a");
        assert_eq!(ep.response.as_ref().unwrap().headers["x-a"], "b");
    }

    #[test]
    fn auth_bodies_are_checked_and_keys_can_be_kept() {
        assert_eq!(
            auth(&json!({"type":"token"}), None).unwrap(),
            AuthConfig::Token
        );
        let err = auth(&json!({"type":"token","secret":"x"}), None).unwrap_err();
        assert!(message(err).starts_with("auth.secret: unknown field"));
        let err = auth(&json!({"type":"jwt","alg":"none"}), None).unwrap_err();
        assert!(message(err).starts_with("auth.alg: "));
        let err = auth(&json!({"type":"jwt","alg":"HS256"}), None).unwrap_err();
        assert_eq!(message(err), "auth.secret: is required for HS256");
        let err = auth(&json!({"type":"jwt","alg":"RS256","secret":"s"}), None).unwrap_err();
        assert!(message(err).starts_with("auth.secret: is for HS256"));
        let err = auth(
            &json!({"type":"jwt","alg":"HS256","secret":"s","required_claims":["exp","aud"]}),
            None,
        )
        .unwrap_err();
        assert!(message(err).starts_with("auth.required_claims[1]: "));
        let current = auth(&json!({"type":"jwt","alg":"HS256","secret":"s3cret"}), None).unwrap();
        let AuthConfig::Jwt(kept) = auth(
            &json!({"type":"jwt","alg":"HS256","leeway_s":5}),
            Some(&current),
        )
        .unwrap() else {
            panic!("not jwt")
        };
        assert_eq!(kept.secret.as_deref(), Some("s3cret"));
        assert_eq!(kept.leeway_s, Some(5));
    }

    #[test]
    fn policy_ip_allow_and_grace() {
        assert_eq!(policy(&json!(null)).unwrap(), None);
        assert_eq!(policy(&json!({})).unwrap(), None);
        let p = policy(&json!({"rate_limit":{"requests":10,"per_s":1}})).unwrap();
        assert_eq!(p.unwrap().rate_limit.unwrap().requests, 10);
        let err = policy(&json!({"rate_limit":{"requests":0,"per_s":1}})).unwrap_err();
        assert_eq!(
            message(err),
            "policy.rate_limit.requests: must be at least 1"
        );
        let err = policy(&json!({"rate_limit":{"requests":1}})).unwrap_err();
        assert_eq!(message(err), "policy.rate_limit.per_s: is required");
        assert_eq!(
            ip_allow(&json!(["10.1.0.0/16", "::1", "10.1.2.3/16"])).unwrap(),
            vec!["10.1.0.0/16", "::1/128"]
        );
        let err = ip_allow(&json!(["10.0.0.0/8", "10.0.0.0/99"])).unwrap_err();
        assert!(message(err).starts_with("ip_allow[1]: "));
        assert_eq!(grace_s(None).unwrap(), 0);
        assert_eq!(grace_s(Some(&json!({"grace_s": 30}))).unwrap(), 30);
        assert!(grace_s(Some(&json!({"grace_s": 604_801}))).is_err());
        assert!(grace_s(Some(&json!({"grace": 1}))).is_err());
    }
}
