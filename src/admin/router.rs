//! The admin API's router: method and path to a handler, the admin key check, and JSON bodies
//! (at most [`MAX_BODY_BYTES`], read within a deadline).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;
use serde_json::{json, Value};

use super::error::{ok, ApiError, Handled};
use super::{Admin, BODY_READ_TIMEOUT, MAX_BODY_BYTES};
use crate::core::catalog::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};

impl Admin {
    pub(super) async fn route<B>(&self, req: Request<B>) -> Handled
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        let full_path = parts.uri.path();
        let path = match full_path.strip_suffix('/') {
            Some(p) if !p.is_empty() => p,
            _ => full_path,
        };
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let method = &parts.method;

        if segments == ["readyz"] {
            return match *method {
                Method::GET | Method::HEAD if self.is_ready() => ok(json!({"status": "ready"})),
                Method::GET | Method::HEAD => Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "this node has lost its store for longer than --max-staleness-s",
                )),
                _ => Err(ApiError::method_not_allowed("GET, HEAD")),
            };
        }
        if segments == ["healthz"] {
            return match *method {
                Method::GET | Method::HEAD => ok(json!({"status": "ok"})),
                _ => Err(ApiError::method_not_allowed("GET, HEAD")),
            };
        }
        self.authorize(&parts.headers)?;

        match segments.as_slice() {
            ["metrics"] => match *method {
                Method::GET => Ok(self.render_metrics().await),
                _ => Err(ApiError::method_not_allowed("GET")),
            },
            ["v1", "nodes"] => match *method {
                Method::GET => self.list_nodes().await,
                _ => Err(ApiError::method_not_allowed("GET")),
            },
            ["v1", "collections"] => match *method {
                Method::GET => {
                    self.list_collections(PageQuery::parse(parts.uri.query())?)
                        .await
                }
                Method::POST => {
                    let body = read_json(body, &parts.headers).await?;
                    self.create_collection(body).await
                }
                _ => Err(ApiError::method_not_allowed("GET, POST")),
            },
            ["v1", "collections", id] => match *method {
                Method::GET => self.get_collection(id).await,
                Method::PUT => {
                    let body = read_json(body, &parts.headers).await?;
                    self.replace_collection(id, body).await
                }
                Method::DELETE => self.delete_collection(id).await,
                _ => Err(ApiError::method_not_allowed("GET, PUT, DELETE")),
            },
            ["v1", "clients"] => match *method {
                Method::GET => {
                    self.list_clients(PageQuery::parse(parts.uri.query())?)
                        .await
                }
                Method::POST => {
                    let body = read_json(body, &parts.headers).await?;
                    self.create_client(body).await
                }
                _ => Err(ApiError::method_not_allowed("GET, POST")),
            },
            ["v1", "clients", id] => match *method {
                Method::GET => self.get_client(id).await,
                Method::PATCH => {
                    let body = read_json(body, &parts.headers).await?;
                    self.patch_client(id, body).await
                }
                Method::DELETE => self.delete_client(id).await,
                _ => Err(ApiError::method_not_allowed("GET, PATCH, DELETE")),
            },
            ["v1", "clients", id, "portal-key"] => match *method {
                Method::POST => self.rotate_portal_key(id).await,
                _ => Err(ApiError::method_not_allowed("POST")),
            },
            ["v1", "clients", id, "profiles"] => match *method {
                Method::GET => {
                    let query = PageQuery::parse(parts.uri.query())?;
                    self.list_profiles(Some(id), true, query).await
                }
                Method::POST => {
                    let body = read_json(body, &parts.headers).await?;
                    self.create_profile(id, body).await
                }
                _ => Err(ApiError::method_not_allowed("GET, POST")),
            },
            ["v1", "profiles"] => match *method {
                Method::GET => {
                    let client_id = query_param(parts.uri.query(), "client_id");
                    let query = PageQuery::parse(parts.uri.query())?;
                    self.list_profiles(client_id.as_deref(), false, query).await
                }
                _ => Err(ApiError::method_not_allowed("GET")),
            },
            ["v1", "profiles", id] => match *method {
                Method::GET => self.get_profile(id).await,
                Method::PATCH => {
                    let body = read_json(body, &parts.headers).await?;
                    self.patch_profile(id, body).await
                }
                Method::DELETE => self.delete_profile(id).await,
                _ => Err(ApiError::method_not_allowed("GET, PATCH, DELETE")),
            },
            ["v1", "profiles", id, "usage"] => match *method {
                Method::GET => self.profile_usage(id).await,
                _ => Err(ApiError::method_not_allowed("GET")),
            },
            ["v1", "profiles", id, "refresh"] => match *method {
                Method::POST => {
                    let body = read_optional_json(body, &parts.headers).await?;
                    self.refresh_profile(id, body).await
                }
                _ => Err(ApiError::method_not_allowed("POST")),
            },
            _ => Err(ApiError::not_found("no such admin resource")),
        }
    }

    /// Checks `Authorization: Bearer <admin key>`: exactly one header, scheme case-insensitive.
    pub(super) fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Err(ApiError::unauthorized(
                "missing admin key: send Authorization: Bearer <admin key>",
            ));
        };
        let wrong = || ApiError::unauthorized("the admin key is not valid");
        if values.next().is_some() {
            return Err(wrong());
        }
        let bytes = value.as_bytes();
        let Some(scheme_end) = bytes.iter().position(|&b| b == b' ') else {
            return Err(wrong());
        };
        if !bytes[..scheme_end].eq_ignore_ascii_case(b"bearer") {
            return Err(wrong());
        }
        let presented = bytes[scheme_end..].trim_ascii();
        if presented.is_empty() || !self.admin_key.matches(presented) {
            return Err(wrong());
        }
        Ok(())
    }

    pub(super) async fn render_metrics(&self) -> Response<Full<Bytes>> {
        let mut text = (self.metrics)();
        text.push_str(&self.render_store_metrics().await);
        let mut response = Response::new(Full::new(Bytes::from(text)));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    }
}

/// The paging parameters of a list call: `?limit=N&after=<id>` (SPEC §4; the shape of Kong's
/// `size`/`offset`, with the last id as the cursor).
pub(super) struct PageQuery {
    /// Items per page, 1 to [`MAX_PAGE_LIMIT`], default [`DEFAULT_PAGE_LIMIT`].
    pub limit: usize,
    /// The page starts after this id (the `next` of the previous page).
    pub after: Option<String>,
}

impl PageQuery {
    /// Reads `limit` and `after`; 400 naming `limit` when it is not an integer from 1 to 1000.
    pub fn parse(query: Option<&str>) -> Result<PageQuery, ApiError> {
        let limit = match query_param(query, "limit") {
            None => DEFAULT_PAGE_LIMIT,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid(
                        "limit",
                        &format!("must be an integer from 1 to {MAX_PAGE_LIMIT}"),
                    ))
                }
            },
        };
        let after = query_param(query, "after").filter(|a| !a.is_empty());
        Ok(PageQuery { limit, after })
    }
}

/// The first value of `name` in a query string (ids are hex, so no percent-decoding is needed).
pub(super) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// Reads a required JSON body.
pub(super) async fn read_json<B>(body: B, headers: &HeaderMap) -> Result<Value, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    read_optional_json(body, headers)
        .await?
        .ok_or_else(|| ApiError::invalid("body", "a JSON object is required"))
}

/// Reads a JSON body, at most [`MAX_BODY_BYTES`]; an empty body is `None`.
pub(super) async fn read_optional_json<B>(
    body: B,
    headers: &HeaderMap,
) -> Result<Option<Value>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::payload_too_large());
    }
    let collected = tokio::time::timeout(
        BODY_READ_TIMEOUT,
        Limited::new(body, MAX_BODY_BYTES).collect(),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body took too long to arrive",
        )
    })?;
    let bytes = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(ApiError::payload_too_large())
        }
        Err(_) => return Err(ApiError::invalid("body", "could not be read")),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ApiError::invalid("body", &format!("is not valid JSON ({e})")))
}
