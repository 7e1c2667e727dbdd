//! Collection bodies: the collection, its endpoints and their fixed responses. The shape of every
//! value (method, path, upstream URL, status, headers) is checked by [`crate::core::rules`], the
//! same rules the route compiler uses; this file adds field names and duplicate detection.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::{name, rule, Obj};
use crate::admin::ApiError;
use crate::core::model::{Collection, Endpoint, FixedResponse};
use crate::core::rules;

/// A collection path: one URL segment of `[a-z0-9-]`, 1 to 64 characters ([`rules::collection_path`]).
pub fn collection_path(field: &str, text: &str) -> Result<String, ApiError> {
    rule(field, rules::collection_path(text))?;
    Ok(text.to_owned())
}

/// Checks an endpoint path ([`rules::endpoint_path`]) and returns its route shape: the path with
/// every parameter name removed, so `/a/:x` and `/a/:y` compare equal.
pub fn endpoint_path(field: &str, text: &str) -> Result<String, ApiError> {
    rule(field, rules::endpoint_path(text)).map(|path| path.shape)
}

/// An upstream URL: absolute `http://host[:port][/path]`, without credentials, query or fragment
/// ([`rules::upstream`]).
pub fn upstream(field: &str, text: &str) -> Result<String, ApiError> {
    rule(field, rules::upstream(text))?;
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
    let method = rule(&obj.field("method"), rules::method(obj.req_str("method")?))?;
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
        method: method.as_str().to_owned(),
        path: path.to_owned(),
        upstream,
        response,
        active,
    };
    Ok((id, endpoint, shape))
}

/// A fixed response: `{"status"?, "headers"?, "body"?}`.
fn fixed_response(value: &Value, at: &str) -> Result<FixedResponse, ApiError> {
    let obj = Obj::new(value, at, &["status", "headers", "body"])?;
    let status = match obj.opt_u64("status")? {
        None => 200,
        Some(s) => rule(&obj.field("status"), rules::fixed_status(s))?.as_u16(),
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
            let Some(text) = value.as_str() else {
                return Err(ApiError::invalid(&field, "must be a string"));
            };
            let (header, _) = rule(&field, rules::fixed_header(name, text))?;
            headers.insert(header.as_str().to_owned(), text.to_owned());
        }
    }
    let body = obj.raw("body").cloned().unwrap_or(Value::Null);
    rule(&obj.field("body"), rules::fixed_body(&body))?;
    Ok(FixedResponse {
        status,
        headers,
        body,
    })
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
    fn upstreams_must_be_http_or_https_urls() {
        assert!(upstream("u", "http://127.0.0.1:9000").is_ok());
        assert!(upstream("u", "http://backend.internal/api/v2").is_ok());
        assert!(upstream("u", "http://[::1]:8000/x").is_ok());
        assert!(upstream("u", "https://api.example.com/v1").is_ok());
        let ftp = message(upstream("u", "ftp://example.com").unwrap_err());
        assert!(ftp.contains("http:// or https://"), "{ftp}");
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
}
