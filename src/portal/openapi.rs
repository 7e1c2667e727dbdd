//! The portal's OpenAPI 3.0.3 document: the same endpoints as the page, both security schemes,
//! path parameters and the error responses of the front door's error table (SPEC §3).

use serde_json::{json, Map, Value};

use crate::portal::view::ClientView;

/// The error responses every endpoint may give: (status, component name, description, codes).
const ERRORS: &[(&str, &str, &str, &[&str])] = &[
    (
        "400",
        "BadRequest",
        "The path cannot be normalized safely.",
        &["invalid_request"],
    ),
    (
        "401",
        "Unauthorized",
        "No credential, or one that is not valid here.",
        &[
            "missing_credentials",
            "invalid_token",
            "multiple_credentials",
            "token_expired",
            "token_not_yet_valid",
        ],
    ),
    (
        "403",
        "Forbidden",
        "The caller's address or the collection is not allowed.",
        &["forbidden"],
    ),
    ("404", "NotFound", "No such endpoint.", &["not_found"]),
    (
        "413",
        "PayloadTooLarge",
        "The request body is over the limit.",
        &["payload_too_large"],
    ),
    (
        "429",
        "TooManyRequests",
        "The rate limit or the quota is used up.",
        &["rate_limited", "quota_exceeded"],
    ),
    (
        "431",
        "RequestHeaderTooLarge",
        "A header, or all of them, too large.",
        &["request_header_too_large"],
    ),
    (
        "502",
        "BadGateway",
        "The upstream could not be reached.",
        &["bad_gateway"],
    ),
    (
        "503",
        "Unavailable",
        "The node has lost its store for too long.",
        &["unavailable"],
    ),
    (
        "504",
        "GatewayTimeout",
        "The upstream was too slow.",
        &["gateway_timeout"],
    ),
];

/// The OpenAPI document of `view`, served from `server_url` (the data plane's public base URL,
/// no trailing `/`). Operations are keyed by method under their `{param}` path; a second
/// endpoint with the same method and path (which routing would never reach) is left out.
pub fn document(view: &ClientView, server_url: &str) -> Value {
    let mut paths = Map::new();
    let mut count = 0usize;
    for (collection, endpoint) in view.endpoints() {
        let item = paths
            .entry(endpoint.openapi_path())
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(item) = item else { continue };
        let method = endpoint.method.to_ascii_lowercase();
        if item.contains_key(&method) {
            continue;
        }
        count += 1;
        let mut responses = Map::new();
        responses.insert(
            "200".into(),
            json!({"description": "The endpoint's answer."}),
        );
        for (status, name, _, _) in ERRORS {
            responses.insert(
                (*status).into(),
                json!({"$ref": format!("#/components/responses/{name}")}),
            );
        }
        let parameters: Vec<Value> = endpoint
            .params
            .iter()
            .map(|name| {
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
            })
            .collect();
        let mut operation = json!({
            "operationId": format!("op{count}"),
            "summary": endpoint.name,
            "tags": [collection.name],
            "responses": responses,
        });
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        if endpoint.takes_body() {
            operation["requestBody"] = json!({
                "required": false,
                "content": {"application/json": {"schema": {}}},
            });
        }
        item.insert(method, operation);
    }
    let mut responses = Map::new();
    for (status, name, description, codes) in ERRORS {
        let mut response = json!({
            "description": description,
            "content": {"application/json": {"schema": {
                "allOf": [{"$ref": "#/components/schemas/Error"}],
                "properties": {"error": {"type": "string", "enum": codes}},
            }}},
        });
        match *status {
            "401" => {
                response["headers"] = json!({"WWW-Authenticate": {
                    "description": "Bearer realm=\"tokengate\", with error=\"invalid_token\" unless the credential was missing.",
                    "schema": {"type": "string"},
                }});
            }
            "429" => {
                response["headers"] = json!({
                    "Retry-After": {
                        "description": "Seconds until a request may succeed.",
                        "schema": {"type": "integer", "minimum": 0},
                    },
                    "RateLimit-Policy": {
                        "description": "The limit that refused the request (IETF httpapi ratelimit-headers draft): \"rate\" or \"quota\", its q requests per w seconds.",
                        "schema": {"type": "string"},
                    },
                    "RateLimit": {
                        "description": "r=0 requests remain, t seconds until the limit resets.",
                        "schema": {"type": "string"},
                    },
                });
            }
            _ => {}
        }
        responses.insert((*name).into(), response);
    }
    let mut tags: Vec<Value> = Vec::new();
    for collection in &view.collections {
        if !tags.iter().any(|t| t["name"] == collection.name.as_str()) {
            tags.push(
                json!({"name": collection.name, "description": format!("/{}", collection.path)}),
            );
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": format!("APIs for {}", view.name),
            "description": "The endpoints this client's access profiles grant, behind tokengate.",
            "version": "1",
        },
        "servers": [{"url": server_url}],
        "security": [{"apiToken": []}, {"bearerJwt": []}],
        "tags": tags,
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiToken": {"type": "apiKey", "in": "header", "name": "API-Token",
                    "description": "The access profile's auth token."},
                "bearerJwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "A JWT signed with the profile's HS256 secret or RS256 key; sub = auth token, name = your name."},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"type": "string", "description": "A stable error code."},
                        "message": {"type": "string", "description": "One human sentence."},
                    },
                },
            },
            "responses": responses,
        },
    })
}
