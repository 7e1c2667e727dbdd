//! The admin API (control plane): collections, clients and access profiles as JSON over HTTP/1.1.
//!
//! Every change follows one path: lock the authoritative [`Catalog`], let the handler say which
//! rows it writes (a [`ChangeSet`]), apply them to the catalog, compile only what they touch with
//! [`Snapshot::apply`], commit them durably through the [`Store`] as one transaction, install the
//! snapshot in the [`Registry`], and only then answer. A request that reaches the data plane after
//! the answer sees the change; a crash after the answer loses nothing; a change that does not
//! compile or that the store refuses is undone in memory and never installed.
//!
//! One file per resource, as the API is laid out:
//! - [`collections`], [`clients`], [`profiles`]: the handlers and the JSON views of each resource.
//! - [`router`]: method and path to handler, the admin key check, JSON bodies.
//! - [`error`]: [`ApiError`] and the JSON answers.
//! - [`input`]: request bodies, checked field by field.

mod clients;
mod collections;
mod error;
pub mod input;
mod profiles;
mod router;

pub use error::ApiError;

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Body;
use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio::sync::{watch, Mutex};

use crate::core::catalog::{Catalog, ChangeSet};
use crate::core::model::State;
use crate::core::registry::{BuildError, Registry, Snapshot};
use crate::core::token;
use crate::server::freshness::Freshness;
use crate::server::{self, ServerLimits};
use crate::store::{Aborted, AdminKey, CommitError, Store, StoreError};

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

/// Renders the Prometheus text exposition served at `GET /metrics`.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// The admin API service. Shared behind an `Arc` by every admin connection.
pub struct Admin {
    /// Digest of the admin key.
    admin_key: AdminKey,
    /// Where changes are saved before they are answered.
    store: Arc<dyn Store>,
    /// The authoritative objects; the lock serializes changes.
    catalog: Arc<Mutex<Catalog>>,
    /// The live snapshot shared with the data plane.
    registry: Arc<Registry>,
    /// Renders `GET /metrics`.
    metrics: MetricsRenderer,
    /// Base URL of the data plane, for `portal_url` (no trailing `/`).
    portal_base_url: String,
    /// How fresh this node's view of a shared store is; `None` for the embedded store.
    freshness: Option<Arc<Freshness>>,
    /// How long a revoking change waits for every live node to apply it.
    propagation_timeout: Duration,
    /// The data plane's listen address, for `/v1/nodes` on the embedded store.
    data_listen: String,
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

/// Applies rows committed by other nodes to the catalog and the live snapshot. A row that does
/// not compile (another node's build accepted what this one refuses) is logged and left out of
/// the snapshot; the catalog still holds it, so the admin API shows what the store holds.
fn apply_remote(catalog: &mut Catalog, registry: &Registry, revision: u64, rows: ChangeSet) {
    if revision <= catalog.revision && rows.is_empty() {
        return;
    }
    let applied = catalog.apply(rows);
    match registry.snapshot().apply(&applied, catalog) {
        Ok(snapshot) => registry.install(snapshot),
        Err(e) => tracing::error!(
            revision,
            error = %e,
            "a change from the store does not compile on this node; it is not served"
        ),
    }
    catalog.revision = catalog.revision.max(revision);
}

/// Why a commit did not happen.
enum Commit {
    /// The handler refused the change.
    Api(ApiError),
    /// The changed state does not compile.
    Invalid(BuildError),
    /// The store could not save it.
    Store(StoreError),
}

pub(super) fn new_id() -> Result<String, ApiError> {
    token::random_id()
        .map_err(|_| ApiError::internal("the operating system's random generator failed"))
}

pub(super) fn now_ms() -> u64 {
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
        let state = store.load().map_err(OpenError::Store)?;
        let snapshot = Snapshot::build(&state).map_err(OpenError::InvalidState)?;
        let registry = Arc::new(Registry::new(snapshot));
        let portal_base_url = portal_base_url.into().trim_end_matches('/').to_owned();
        Ok(Admin {
            admin_key,
            store,
            catalog: Arc::new(Mutex::new(Catalog::from_state(&state))),
            registry,
            metrics,
            portal_base_url,
            freshness: None,
            propagation_timeout: Duration::from_secs(2),
            data_listen: String::new(),
        })
    }

    /// The data plane's listen address, as `/v1/nodes` shows it for the embedded store.
    pub fn with_data_listen(mut self, addr: impl Into<String>) -> Admin {
        self.data_listen = addr.into();
        self
    }

    /// Makes this admin one node of many: `freshness` drives `/readyz` and
    /// `tokengate_store_up`; revoking changes wait up to `propagation_timeout` for every live
    /// node to apply them.
    pub fn with_cluster(
        mut self,
        freshness: Option<Arc<Freshness>>,
        propagation_timeout: Duration,
    ) -> Admin {
        self.freshness = freshness;
        self.propagation_timeout = propagation_timeout;
        self
    }

    /// Whether this node may be sent traffic: its store was loaded (it is running) and it is
    /// not past `--max-staleness-s`.
    pub fn is_ready(&self) -> bool {
        self.freshness.as_ref().is_none_or(|f| !f.is_stale())
    }

    /// [`Admin::update`] for a change that can take access away (SPEC §4): once committed, it
    /// waits until every live node has applied it or `--propagation-timeout-s` has passed, and
    /// returns `{"applied":N,"live":M}` beside the handler's value.
    pub(crate) async fn update_revoking<T: Send + 'static>(
        &self,
        change: impl FnOnce(&Catalog, &mut ChangeSet) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<(T, serde_json::Value), ApiError> {
        let (out, revision) = self.update_with_revision(change).await?;
        let revision = match revision {
            Some(revision) => revision,
            None => self.revision().await,
        };
        Ok((out, self.wait_for_propagation(revision).await))
    }

    async fn wait_for_propagation(&self, revision: u64) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + self.propagation_timeout;
        let mut last = (0, 0);
        loop {
            let store = Arc::clone(&self.store);
            match tokio::task::spawn_blocking(move || store.propagation(revision)).await {
                Ok(Ok(counted)) => last = counted,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot count the nodes that applied a change")
                }
                Err(_) => {}
            }
            if (last.1 > 0 && last.0 >= last.1) || tokio::time::Instant::now() >= deadline {
                return serde_json::json!({"applied": last.0, "live": last.1});
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// `GET /v1/nodes`: every node sharing the store (this one alone for the embedded store).
    pub(super) async fn list_nodes(&self) -> error::Handled {
        let store = Arc::clone(&self.store);
        let nodes = tokio::task::spawn_blocking(move || store.nodes())
            .await
            .map_err(|_| ApiError::internal("the node list could not be read"))?
            .map_err(|e| {
                tracing::warn!(error = %e, "cannot list the nodes");
                ApiError::store_unavailable()
            })?;
        let revision = self.revision().await;
        let items = if nodes.is_empty() {
            serde_json::json!([{
                "id": "local",
                "listen": self.data_listen,
                "version": env!("CARGO_PKG_VERSION"),
                "applied_revision": revision,
                "heartbeat_age_s": 0.0,
                "lag": 0,
                "live": true,
            }])
        } else {
            serde_json::json!(nodes)
        };
        error::ok(serde_json::json!({"items": items, "next": null}))
    }

    /// Gauges of this node's store: `tokengate_config_revision`, `tokengate_store_up`.
    pub async fn render_store_metrics(&self) -> String {
        let revision = self.revision().await;
        let up = self.freshness.as_ref().is_none_or(|f| f.is_up());
        format!(
            "# HELP tokengate_config_revision The store revision this node has applied.\n# TYPE tokengate_config_revision gauge\ntokengate_config_revision {revision}\n# HELP tokengate_store_up Whether the last round trip to the store succeeded.\n# TYPE tokengate_store_up gauge\ntokengate_store_up {}\n",
            u8::from(up)
        ) + &self
            .freshness
            .as_ref()
            .map(|f| f.render_propagation())
            .unwrap_or_default()
    }

    /// The registry this admin installs snapshots into; give it to the data plane.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    /// Every object as one state document (a copy: for tests and small tools, not for 100 000
    /// profiles on a hot path).
    pub async fn state(&self) -> State {
        self.catalog.lock().await.to_state()
    }

    /// Commits a change the one way every change is committed, on a blocking thread that
    /// finishes even if the caller hangs up. Inside the store's write transaction (writers on
    /// every node held off): apply what other nodes committed since this node's revision; run
    /// `change` against the now current catalog, which fills a [`ChangeSet`] with the rows to
    /// write (or fails with the answer to give); apply them to the catalog and compile what they
    /// touch; write them. Once the store has committed, install the snapshot. If compiling or
    /// the store fails, the catalog is restored and nothing is installed.
    pub async fn update<T: Send + 'static>(
        &self,
        change: impl FnOnce(&Catalog, &mut ChangeSet) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.update_with_revision(change).await.map(|(out, _)| out)
    }

    /// [`Admin::update`], also returning the change's revision (`None` when nothing was written).
    pub(crate) async fn update_with_revision<T: Send + 'static>(
        &self,
        change: impl FnOnce(&Catalog, &mut ChangeSet) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<(T, Option<u64>), ApiError> {
        let mut guard = Arc::clone(&self.catalog).lock_owned().await;
        let store = Arc::clone(&self.store);
        let registry = Arc::clone(&self.registry);
        let commit = tokio::task::spawn_blocking(move || {
            let mut change = Some(change);
            let mut out: Option<Result<T, Commit>> = None;
            let mut own = None;
            let mut next = None;
            let known = guard.revision;
            let result = store.commit_with(known, &mut |gap| {
                if let Some((revision, rows)) = gap {
                    apply_remote(&mut guard, &registry, revision, rows);
                }
                let change = change.take().ok_or(Aborted)?;
                let mut rows = ChangeSet::default();
                match change(&guard, &mut rows) {
                    Ok(value) => out = Some(Ok(value)),
                    Err(e) => {
                        out = Some(Err(Commit::Api(e)));
                        return Err(Aborted);
                    }
                }
                if rows.is_empty() {
                    return Err(Aborted);
                }
                let applied = guard.apply(rows.clone());
                match registry.snapshot().apply(&applied, &guard) {
                    Ok(snapshot) => next = Some(snapshot),
                    Err(e) => {
                        guard.undo(applied);
                        out = Some(Err(Commit::Invalid(e)));
                        return Err(Aborted);
                    }
                }
                own = Some(applied);
                Ok(rows)
            });
            match result {
                Ok(revision) => {
                    guard.revision = revision;
                    if let Some(snapshot) = next {
                        registry.install(snapshot);
                    }
                    out.map(|r| r.map(|value| (value, Some(revision))))
                        .unwrap_or(Err(Commit::Api(ApiError::internal("the change was lost"))))
                }
                Err(CommitError::Aborted) => match out {
                    Some(Ok(value)) => Ok((value, None)),
                    Some(Err(e)) => Err(e),
                    None => Err(Commit::Api(ApiError::internal("the change was lost"))),
                },
                Err(CommitError::Store(e)) => {
                    if let Some(applied) = own {
                        guard.undo(applied);
                    }
                    Err(Commit::Store(e))
                }
            }
        });
        match commit.await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(Commit::Api(e))) => Err(e),
            Ok(Err(Commit::Invalid(e))) => Err(ApiError::from_build(e)),
            Ok(Err(Commit::Store(e))) => {
                tracing::error!(error = %e, "admin change not applied: the store could not save it");
                Err(ApiError::store_unavailable())
            }
            Err(e) => {
                tracing::error!(error = %e, "admin change not applied: the commit task failed");
                Err(ApiError::internal(
                    "the change could not be applied because of an internal error",
                ))
            }
        }
    }

    /// Applies what other nodes committed since this node's revision (a notification, or the
    /// periodic check). Returns the revision now applied.
    pub async fn catch_up(&self) -> Result<u64, StoreError> {
        let mut guard = Arc::clone(&self.catalog).lock_owned().await;
        let store = Arc::clone(&self.store);
        let registry = Arc::clone(&self.registry);
        let joined = tokio::task::spawn_blocking(move || {
            if let Some((revision, rows)) = store.changes_since(guard.revision)? {
                apply_remote(&mut guard, &registry, revision, rows);
            }
            Ok(guard.revision)
        })
        .await;
        joined.unwrap_or_else(|e| Err(StoreError::unavailable("store", e.to_string())))
    }

    /// Reads every object again and applies the difference (after a lost connection, when
    /// notifications may have been missed). Unchanged objects are not recompiled.
    pub async fn resync(&self) -> Result<u64, StoreError> {
        let mut guard = Arc::clone(&self.catalog).lock_owned().await;
        let store = Arc::clone(&self.store);
        let registry = Arc::clone(&self.registry);
        let joined = tokio::task::spawn_blocking(move || {
            let state = store.load()?;
            let rows = guard.difference(&state);
            apply_remote(&mut guard, &registry, state.revision, rows);
            Ok(guard.revision)
        })
        .await;
        joined.unwrap_or_else(|e| Err(StoreError::unavailable("store", e.to_string())))
    }

    /// The revision this node has applied.
    pub async fn revision(&self) -> u64 {
        self.catalog.lock().await.revision
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
}

/// Serves the admin API on `listener` until `shutdown` turns `true` (or its sender is dropped):
/// HTTP/1.1 with keep-alive, a 10 s header-read and idle timeout, 1 MiB bodies, at most 1024
/// connections. On shutdown it stops accepting, lets in-flight requests finish (up to 10 s) and
/// returns. The accept loop is the data plane's [`server::serve`].
pub async fn serve_admin(
    listener: TcpListener,
    admin: Arc<Admin>,
    shutdown: watch::Receiver<bool>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let limits = ServerLimits {
        max_connections: 1024,
        header_read_timeout: HEADER_READ_TIMEOUT,
        max_head_bytes: 64 * 1024,
        drain_timeout: SHUTDOWN_GRACE,
        send_timeout: BODY_READ_TIMEOUT,
    };
    let make_service = move |_peer| {
        let admin = Arc::clone(&admin);
        service_fn(move |req| {
            let admin = Arc::clone(&admin);
            async move { Ok::<_, Infallible>(admin.handle(req).await) }
        })
    };
    server::serve(listener, make_service, limits, shutdown, None, tls).await;
}
