//! The admin API (control plane): collections, clients and access profiles as JSON over HTTP/1.1.
//!
//! Every change follows one path: lock the authoritative [`State`], apply the change to a copy,
//! validate it, compile it with [`Snapshot::build`], save it durably through the [`Store`], install
//! the snapshot in the [`Registry`], and only then answer. A request that reaches the data plane
//! after the answer sees the change; a crash after the answer loses nothing; a failed save leaves
//! both memory and disk as they were.

mod input;

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::service::service_fn;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{watch, Mutex};

use crate::core::model::{AuthConfig, Client, Collection, Profile, State};
use crate::core::registry::{BuildError, Registry, Snapshot};
use crate::core::token;
use crate::server::{self, ServerLimits};
use crate::store::{AdminKey, Store, StoreError};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
pub use crate::core::registry::MAX_PROFILES_PER_CLIENT;
/// How long a client may take to send a request's headers; also the idle keep-alive timeout
/// (hyper 1.x restarts this timer while waiting for the next request on a kept-alive connection).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for in-flight admin requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The realm in `WWW-Authenticate`.
const REALM: &str = "Bearer realm=\"tokengate-admin\"";

/// Renders the Prometheus text exposition served at `GET /metrics`.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// The admin API service. Shared behind an `Arc` by every admin connection.
pub struct Admin {
    /// Digest of the admin key.
    admin_key: AdminKey,
    /// Where changes are saved before they are answered.
    store: Arc<dyn Store>,
    /// The authoritative state; the lock serializes changes.
    state: Arc<Mutex<State>>,
    /// The live snapshot shared with the data plane.
    registry: Arc<Registry>,
    /// Renders `GET /metrics`.
    metrics: MetricsRenderer,
    /// Base URL of the data plane, for `portal_url` (no trailing `/`).
    portal_base_url: String,
}

/// Why [`Admin::open`] could not start.
#[derive(Debug)]
pub enum OpenError {
    /// The stored state could not be read.
    Store(StoreError),
    /// The stored state was read but does not compile (for example a key that a newer rule rejects).
    InvalidState(BuildError),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Store(e) => write!(f, "{e}"),
            OpenError::InvalidState(e) => write!(
                f,
                "the stored state does not compile ({}: {}); tokengate refuses to start rather than drop it",
                e.field, e.message
            ),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Store(e) => Some(e),
            OpenError::InvalidState(_) => None,
        }
    }
}

/// Why a commit did not happen.
enum Commit {
    /// The changed state does not compile.
    Invalid(BuildError),
    /// The store could not save it.
    Store(StoreError),
}

/// An admin API error answer: status, SPEC error code and one sentence naming the field.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    status: StatusCode,
    /// The `error` member: `invalid_input`, `unauthorized`, `not_found`, …
    code: &'static str,
    /// The `message` member.
    message: String,
    /// For 405: the methods the resource allows.
    allow: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            allow: None,
        }
    }

    /// 400 `invalid_input`: `"<field>: <what is wrong>"`.
    pub fn invalid(field: &str, what: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!("{field}: {what}"),
        )
    }

    /// 409 `conflict`.
    pub fn conflict(message: &str) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 `internal`.
    pub fn internal(message: &str) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    fn method_not_allowed(allow: &'static str) -> Self {
        ApiError {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("this resource allows only {allow}"),
            )
        }
    }

    fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        )
    }

    fn from_build(e: BuildError) -> Self {
        Self::invalid(&e.field, &e.message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The SPEC error code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The human sentence.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let body = json!({"error": self.code, "message": self.message});
        let mut response = json_response(self.status, &body);
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = if self.message.starts_with("missing") {
                REALM.to_owned()
            } else {
                format!("{REALM}, error=\"invalid_token\"")
            };
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        }
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Responses may carry a freshly generated auth token or a portal key.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn no_content() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

type Handled = Result<Response<Full<Bytes>>, ApiError>;

fn ok(body: Value) -> Handled {
    Ok(json_response(StatusCode::OK, &body))
}

fn created(body: Value) -> Handled {
    Ok(json_response(StatusCode::CREATED, &body))
}

fn new_id() -> Result<String, ApiError> {
    token::random_id()
        .map_err(|_| ApiError::internal("the operating system's random generator failed"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Admin {
    /// Loads the state from `store` (an empty state on the first start), compiles it, and creates
    /// the registry that the data plane shares (take it with [`Admin::registry`]).
    ///
    /// `portal_base_url` is the data plane's public base URL (`http://127.0.0.1:8080`);
    /// `metrics` renders `GET /metrics`.
    pub fn open(
        store: Arc<dyn Store>,
        admin_key: AdminKey,
        portal_base_url: impl Into<String>,
        metrics: MetricsRenderer,
    ) -> Result<Admin, OpenError> {
        let state = store.load().map_err(OpenError::Store)?.unwrap_or(State {
            format: State::FORMAT,
            ..State::default()
        });
        let snapshot = Snapshot::build(&state, None).map_err(OpenError::InvalidState)?;
        let registry = Arc::new(Registry::new(snapshot));
        let portal_base_url = portal_base_url.into().trim_end_matches('/').to_owned();
        Ok(Admin {
            admin_key,
            store,
            state: Arc::new(Mutex::new(state)),
            registry,
            metrics,
            portal_base_url,
        })
    }

    /// The registry this admin installs snapshots into; give it to the data plane.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    /// A copy of the current authoritative state.
    pub async fn state(&self) -> State {
        self.state.lock().await.clone()
    }

    /// Applies `change` to a copy of the state and commits it the one way every change is
    /// committed: validate and compile, save durably, install the snapshot, replace the state,
    /// bump `revision`. If any step fails nothing changes, in memory or on disk.
    ///
    /// The commit runs on a blocking thread that finishes even if the caller is dropped (a
    /// client hanging up mid-request), so memory and disk never disagree.
    pub async fn update<T>(
        &self,
        change: impl FnOnce(&mut State) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut guard = Arc::clone(&self.state).lock_owned().await;
        let mut next = guard.clone();
        let out = change(&mut next)?;
        next.format = State::FORMAT;
        next.revision = guard.revision.wrapping_add(1);
        let store = Arc::clone(&self.store);
        let registry = Arc::clone(&self.registry);
        // Compiling parses every key (RSA included): off the async workers, like the fsync.
        let commit = tokio::task::spawn_blocking(move || {
            let current = registry.snapshot();
            let snapshot = Snapshot::build(&next, Some(&current)).map_err(Commit::Invalid)?;
            drop(current);
            store.save(&next).map_err(Commit::Store)?;
            registry.install(snapshot);
            *guard = next;
            Ok(())
        });
        match commit.await {
            Ok(Ok(())) => Ok(out),
            Ok(Err(Commit::Invalid(e))) => Err(ApiError::from_build(e)),
            Ok(Err(Commit::Store(e))) => {
                tracing::error!(error = %e, "admin change not applied: the store could not save it");
                Err(ApiError::internal(
                    "the change could not be saved, so it was not applied",
                ))
            }
            Err(e) => {
                tracing::error!(error = %e, "admin change not applied: the commit task failed");
                Err(ApiError::internal(
                    "the change could not be applied because of an internal error",
                ))
            }
        }
    }

    /// Answers one admin request. Generic over the body so that tests and in-process callers
    /// (`--demo` seeding) can pass a `Full<Bytes>` instead of a socket's body.
    ///
    /// Every call but `GET /healthz` needs `Authorization: Bearer <admin key>`; that includes
    /// `GET /metrics` (Prometheus sends it with `authorization: {credentials: …}` or
    /// `bearer_token_file`), because counters per profile and client reveal who uses the gateway.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match self.route(req).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        }
    }

    async fn route<B>(&self, req: Request<B>) -> Handled
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

        if segments == ["healthz"] {
            return match *method {
                Method::GET | Method::HEAD => ok(json!({"status": "ok"})),
                _ => Err(ApiError::method_not_allowed("GET, HEAD")),
            };
        }
        self.authorize(&parts.headers)?;

        match segments.as_slice() {
            ["metrics"] => match *method {
                Method::GET => Ok(self.render_metrics()),
                _ => Err(ApiError::method_not_allowed("GET")),
            },
            ["v1", "collections"] => match *method {
                Method::GET => self.list_collections().await,
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
                Method::GET => self.list_clients().await,
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
            ["v1", "clients", id, "profiles"] => match *method {
                Method::GET => self.list_profiles(Some(id), true).await,
                Method::POST => {
                    let body = read_json(body, &parts.headers).await?;
                    self.create_profile(id, body).await
                }
                _ => Err(ApiError::method_not_allowed("GET, POST")),
            },
            ["v1", "profiles"] => match *method {
                Method::GET => {
                    let client_id = query_param(parts.uri.query(), "client_id");
                    self.list_profiles(client_id.as_deref(), false).await
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
    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
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

    fn render_metrics(&self) -> Response<Full<Bytes>> {
        let text = (self.metrics)();
        let mut response = Response::new(Full::new(Bytes::from(text)));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    }

    // ----- collections -----

    async fn list_collections(&self) -> Handled {
        let state = self.state.lock().await;
        ok(json!({ "collections": state.collections }))
    }

    async fn get_collection(&self, id: &str) -> Handled {
        let state = self.state.lock().await;
        let collection = find_collection(&state, id)?;
        ok(json!(collection))
    }

    async fn create_collection(&self, body: Value) -> Handled {
        let (_, parsed) = input::collection(&body, false)?;
        let collection = self
            .update(move |state| {
                ensure_path_free(state, &parsed.path, None)?;
                let endpoints = input::assign_endpoint_ids(parsed.endpoints, None, new_id)?;
                let collection = Collection {
                    id: new_id()?,
                    name: parsed.name,
                    path: parsed.path,
                    endpoints,
                };
                state.collections.push(collection.clone());
                Ok(collection)
            })
            .await?;
        tracing::info!(collection_id = %collection.id, path = %collection.path, "collection created");
        created(json!(collection))
    }

    async fn replace_collection(&self, id: &str, body: Value) -> Handled {
        let (given_id, parsed) = input::collection(&body, true)?;
        if given_id.as_deref().is_some_and(|given| given != id) {
            return Err(ApiError::invalid(
                "id",
                "does not match the collection in the URL",
            ));
        }
        let id = id.to_owned();
        let collection = self
            .update(move |state| {
                let index = collection_index(state, &id)?;
                ensure_path_free(state, &parsed.path, Some(&id))?;
                let endpoints = input::assign_endpoint_ids(
                    parsed.endpoints,
                    Some(&state.collections[index]),
                    new_id,
                )?;
                let collection = Collection {
                    id,
                    name: parsed.name,
                    path: parsed.path,
                    endpoints,
                };
                state.collections[index] = collection.clone();
                Ok(collection)
            })
            .await?;
        tracing::info!(collection_id = %collection.id, "collection replaced");
        ok(json!(collection))
    }

    async fn delete_collection(&self, id: &str) -> Handled {
        let id = id.to_owned();
        self.update(move |state| {
            let index = collection_index(state, &id)?;
            state.collections.remove(index);
            for profile in &mut state.profiles {
                let before = profile.collections.len();
                profile.collections.retain(|c| *c != id);
                if profile.collections.len() != before {
                    profile.generation += 1;
                }
            }
            tracing::info!(collection_id = %id, "collection deleted");
            Ok(())
        })
        .await?;
        Ok(no_content())
    }

    // ----- clients -----

    fn client_view(&self, client: &Client) -> Value {
        json!({
            "id": client.id,
            "name": client.name,
            "portal_key": client.portal_key,
            "portal_url": format!("{}/_tokengate/portal/{}", self.portal_base_url, client.portal_key),
            "active": client.active,
        })
    }

    async fn list_clients(&self) -> Handled {
        let state = self.state.lock().await;
        let clients: Vec<Value> = state.clients.iter().map(|c| self.client_view(c)).collect();
        ok(json!({ "clients": clients }))
    }

    async fn get_client(&self, id: &str) -> Handled {
        let state = self.state.lock().await;
        let client = find_client(&state, id)?;
        ok(self.client_view(client))
    }

    async fn create_client(&self, body: Value) -> Handled {
        let obj = input::Obj::new(&body, "", &["name", "active"])?;
        let name = input::name("name", obj.req_str("name")?)?;
        let active = obj.opt_bool("active")?.unwrap_or(true);
        let client = self
            .update(move |state| {
                let portal_key = token::generate()
                    .map_err(|_| {
                        ApiError::internal("the operating system's random generator failed")
                    })?
                    .raw;
                let client = Client {
                    id: new_id()?,
                    name,
                    portal_key,
                    active,
                };
                state.clients.push(client.clone());
                Ok(client)
            })
            .await?;
        tracing::info!(client_id = %client.id, "client created");
        created(self.client_view(&client))
    }

    async fn patch_client(&self, id: &str, body: Value) -> Handled {
        let obj = input::Obj::new(&body, "", &["name", "active"])?;
        let name = match obj.opt_str("name")? {
            Some(text) => Some(input::name("name", text)?),
            None => None,
        };
        let active = obj.opt_bool("active")?;
        let id = id.to_owned();
        let client = self
            .update(move |state| {
                let index = client_index(state, &id)?;
                let client = &mut state.clients[index];
                if let Some(name) = name {
                    client.name = name;
                }
                if let Some(active) = active {
                    client.active = active;
                }
                let client = client.clone();
                // The client's name and activity are part of every one of its profiles'
                // verdicts: void their cached verifications.
                for profile in state.profiles.iter_mut().filter(|p| p.client_id == id) {
                    profile.generation += 1;
                }
                Ok(client)
            })
            .await?;
        tracing::info!(client_id = %client.id, active = client.active, "client changed");
        ok(self.client_view(&client))
    }

    async fn delete_client(&self, id: &str) -> Handled {
        let id = id.to_owned();
        self.update(move |state| {
            let index = client_index(state, &id)?;
            state.clients.remove(index);
            state.profiles.retain(|p| p.client_id != id);
            tracing::info!(client_id = %id, "client and its profiles deleted");
            Ok(())
        })
        .await?;
        Ok(no_content())
    }

    // ----- profiles -----

    async fn list_profiles(&self, client_id: Option<&str>, client_must_exist: bool) -> Handled {
        let state = self.state.lock().await;
        if let (true, Some(id)) = (client_must_exist, client_id) {
            find_client(&state, id)?;
        }
        let profiles: Vec<Value> = state
            .profiles
            .iter()
            .filter(|p| client_id.is_none_or(|id| p.client_id == id))
            .map(profile_view)
            .collect();
        ok(json!({ "profiles": profiles }))
    }

    async fn get_profile(&self, id: &str) -> Handled {
        let state = self.state.lock().await;
        let profile = find_profile(&state, id)?;
        ok(profile_view(profile))
    }

    async fn create_profile(&self, client_id: &str, body: Value) -> Handled {
        let obj = input::Obj::new(
            &body,
            "",
            &[
                "name",
                "collections",
                "auth",
                "active",
                "policy",
                "ip_allow",
            ],
        )?;
        let name = input::name("name", obj.req_str("name")?)?;
        let Some(auth_value) = obj.raw("auth") else {
            return Err(ApiError::invalid("auth", "is required"));
        };
        let auth = input::auth(auth_value, None)?;
        let active = obj.opt_bool("active")?.unwrap_or(true);
        let policy = match obj.raw("policy") {
            Some(v) => input::policy(v)?,
            None => None,
        };
        let ip_allow = match obj.raw("ip_allow") {
            Some(v) => input::ip_allow(v)?,
            None => Vec::new(),
        };
        let collections_value = obj.raw("collections").cloned();
        let client_id = client_id.to_owned();
        let (profile, raw_token) = self
            .update(move |state| {
                find_client(state, &client_id)?;
                let collections = match &collections_value {
                    Some(Value::Null) | None => Vec::new(),
                    Some(v) => input::collection_ids(v, |id| {
                        state.collections.iter().any(|c| c.id == id)
                    })?,
                };
                let count = state
                    .profiles
                    .iter()
                    .filter(|p| p.client_id == client_id)
                    .count();
                if count >= MAX_PROFILES_PER_CLIENT {
                    return Err(ApiError::conflict(&format!(
                        "client {client_id} already has {MAX_PROFILES_PER_CLIENT} profiles, the most one client may have"
                    )));
                }
                let new = token::generate().map_err(|_| {
                    ApiError::internal("the operating system's random generator failed")
                })?;
                let profile = Profile {
                    id: new_id()?,
                    client_id,
                    name,
                    collections,
                    auth,
                    active,
                    policy,
                    ip_allow,
                    token: new.stored,
                    previous_token: None,
                    generation: 1,
                };
                state.profiles.push(profile.clone());
                Ok((profile, new.raw))
            })
            .await?;
        tracing::info!(profile_id = %profile.id, client_id = %profile.client_id, "profile created");
        created(with_token(profile_view(&profile), raw_token))
    }

    async fn patch_profile(&self, id: &str, body: Value) -> Handled {
        // Checked here, before the lock, for a fast 400; `auth` is parsed under the lock because
        // it may keep the current key.
        input::Obj::new(
            &body,
            "",
            &[
                "name",
                "collections",
                "auth",
                "active",
                "policy",
                "ip_allow",
            ],
        )?;
        let id = id.to_owned();
        let profile = self
            .update(move |state| {
                let obj = input::Obj::new(
                    &body,
                    "",
                    &[
                        "name",
                        "collections",
                        "auth",
                        "active",
                        "policy",
                        "ip_allow",
                    ],
                )?;
                let index = profile_index(state, &id)?;
                let collections = match obj.raw("collections") {
                    Some(Value::Null) => Some(Vec::new()),
                    Some(v) => Some(input::collection_ids(v, |cid| {
                        state.collections.iter().any(|c| c.id == cid)
                    })?),
                    None => None,
                };
                let profile = &mut state.profiles[index];
                if let Some(text) = obj.opt_str("name")? {
                    profile.name = input::name("name", text)?;
                }
                if let Some(collections) = collections {
                    profile.collections = collections;
                }
                if let Some(value) = obj.raw("auth") {
                    profile.auth = input::auth(value, Some(&profile.auth))?;
                }
                if let Some(active) = obj.opt_bool("active")? {
                    profile.active = active;
                }
                if let Some(value) = obj.raw("policy") {
                    profile.policy = input::policy(value)?;
                }
                if let Some(value) = obj.raw("ip_allow") {
                    profile.ip_allow = input::ip_allow(value)?;
                }
                profile.generation += 1;
                Ok(profile.clone())
            })
            .await?;
        tracing::info!(profile_id = %profile.id, "profile changed");
        ok(profile_view(&profile))
    }

    async fn delete_profile(&self, id: &str) -> Handled {
        let id = id.to_owned();
        self.update(move |state| {
            let index = profile_index(state, &id)?;
            state.profiles.remove(index);
            tracing::info!(profile_id = %id, "profile deleted");
            Ok(())
        })
        .await?;
        Ok(no_content())
    }

    async fn refresh_profile(&self, id: &str, body: Option<Value>) -> Handled {
        let grace_s = input::grace_s(body.as_ref())?;
        let id = id.to_owned();
        let (profile, raw_token) = self
            .update(move |state| {
                let index = profile_index(state, &id)?;
                let new = token::generate().map_err(|_| {
                    ApiError::internal("the operating system's random generator failed")
                })?;
                let profile = &mut state.profiles[index];
                let old = std::mem::replace(&mut profile.token, new.stored);
                profile.previous_token = (grace_s > 0).then(|| crate::core::model::GraceToken {
                    sha256: old.sha256,
                    valid_until_ms: now_ms().saturating_add(grace_s * 1000),
                });
                profile.generation += 1;
                Ok((profile.clone(), new.raw))
            })
            .await?;
        tracing::info!(profile_id = %profile.id, grace_s, "profile token refreshed");
        ok(with_token(profile_view(&profile), raw_token))
    }
}

/// The masked view of a profile: no token, no digest, no secret, no key.
fn profile_view(profile: &Profile) -> Value {
    let mut view = json!({
        "id": profile.id,
        "client_id": profile.client_id,
        "name": profile.name,
        "collections": profile.collections,
        "auth": auth_view(&profile.auth),
        "active": profile.active,
        "auth_token_masked": token::mask(&profile.token.last4),
        "policy": profile.policy,
        "ip_allow": profile.ip_allow,
        "generation": profile.generation,
    });
    if let (Some(previous), Some(map)) = (&profile.previous_token, view.as_object_mut()) {
        map.insert(
            "previous_token_valid_until_ms".to_owned(),
            json!(previous.valid_until_ms),
        );
    }
    view
}

/// `auth` without `secret` or `public_key`: only whether they are set.
fn auth_view(auth: &AuthConfig) -> Value {
    match auth {
        AuthConfig::Token => json!({"type": "token"}),
        AuthConfig::Jwt(jwt) => {
            let mut view = json!({
                "type": "jwt",
                "alg": jwt.alg,
                "required_claims": jwt.required_claims,
                "allowed_issuers": jwt.allowed_issuers,
                "max_lifetime_s": jwt.max_lifetime_s,
                "leeway_s": jwt.leeway_s,
            });
            if let Some(map) = view.as_object_mut() {
                match jwt.alg {
                    crate::core::model::JwtAlg::HS256 => {
                        map.insert("secret_set".to_owned(), json!(jwt.secret.is_some()));
                        map.insert("secret_is_base64".to_owned(), json!(jwt.secret_is_base64));
                    }
                    crate::core::model::JwtAlg::RS256 => {
                        map.insert("public_key_set".to_owned(), json!(jwt.public_key.is_some()));
                    }
                }
            }
            view
        }
    }
}

/// `view` plus the whole auth token: only in the create and refresh responses.
fn with_token(mut view: Value, raw_token: String) -> Value {
    if let Some(map) = view.as_object_mut() {
        map.insert("auth_token".to_owned(), Value::String(raw_token));
    }
    view
}

/// Index of the item whose id is `id`, or 404 naming `what`.
fn index_by_id<T>(
    items: &[T],
    id: &str,
    item_id: impl Fn(&T) -> &str,
    what: &str,
) -> Result<usize, ApiError> {
    items
        .iter()
        .position(|item| item_id(item) == id)
        .ok_or_else(|| ApiError::not_found(&format!("no such {what}")))
}

fn collection_index(state: &State, id: &str) -> Result<usize, ApiError> {
    index_by_id(&state.collections, id, |c| &c.id, "collection")
}

fn client_index(state: &State, id: &str) -> Result<usize, ApiError> {
    index_by_id(&state.clients, id, |c| &c.id, "client")
}

fn profile_index(state: &State, id: &str) -> Result<usize, ApiError> {
    index_by_id(&state.profiles, id, |p| &p.id, "profile")
}

fn find_collection<'s>(state: &'s State, id: &str) -> Result<&'s Collection, ApiError> {
    collection_index(state, id).map(|i| &state.collections[i])
}

fn find_client<'s>(state: &'s State, id: &str) -> Result<&'s Client, ApiError> {
    client_index(state, id).map(|i| &state.clients[i])
}

fn find_profile<'s>(state: &'s State, id: &str) -> Result<&'s Profile, ApiError> {
    profile_index(state, id).map(|i| &state.profiles[i])
}

/// 409 if another collection (not `except`) already has `path`.
fn ensure_path_free(state: &State, path: &str, except: Option<&str>) -> Result<(), ApiError> {
    match state
        .collections
        .iter()
        .find(|c| c.path == path && Some(c.id.as_str()) != except)
    {
        Some(other) => Err(ApiError::conflict(&format!(
            "path: {path:?} is already the path of collection {}",
            other.id
        ))),
        None => Ok(()),
    }
}

/// The first value of `name` in a query string (ids are hex, so no percent-decoding is needed).
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// Reads a required JSON body.
async fn read_json<B>(body: B, headers: &HeaderMap) -> Result<Value, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    read_optional_json(body, headers)
        .await?
        .ok_or_else(|| ApiError::invalid("body", "a JSON object is required"))
}

/// Reads a JSON body, at most [`MAX_BODY_BYTES`]; an empty body is `None`.
async fn read_optional_json<B>(body: B, headers: &HeaderMap) -> Result<Option<Value>, ApiError>
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

/// Serves the admin API on `listener` until `shutdown` turns `true` (or its sender is dropped):
/// HTTP/1.1 with keep-alive, a 10 s header-read and idle timeout, 1 MiB bodies, at most 1024
/// connections. On shutdown it stops accepting, lets in-flight requests finish (up to 10 s) and
/// returns. The accept loop is the data plane's [`server::serve`].
pub async fn serve_admin(
    listener: TcpListener,
    admin: Arc<Admin>,
    shutdown: watch::Receiver<bool>,
) {
    let limits = ServerLimits {
        max_connections: 1024,
        header_read_timeout: HEADER_READ_TIMEOUT,
        max_head_bytes: 64 * 1024,
        drain_timeout: SHUTDOWN_GRACE,
    };
    let make_service = move |_peer| {
        let admin = Arc::clone(&admin);
        service_fn(move |req| {
            let admin = Arc::clone(&admin);
            async move { Ok::<_, Infallible>(admin.handle(req).await) }
        })
    };
    server::serve(listener, make_service, limits, shutdown).await;
}
