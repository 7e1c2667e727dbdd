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
        })
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

    /// Commits a change the one way every change is committed. `change` reads the current
    /// catalog and fills a [`ChangeSet`] with the rows to write (or fails with the answer to
    /// give); then, on a blocking thread that finishes even if the caller hangs up: apply the rows
    /// to the catalog, compile what they touch, commit them to the store, install the snapshot.
    /// If compiling or the store fails, the catalog is restored and nothing is installed.
    pub async fn update<T>(
        &self,
        change: impl FnOnce(&Catalog, &mut ChangeSet) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut guard = Arc::clone(&self.catalog).lock_owned().await;
        let mut rows = ChangeSet::default();
        let out = change(&guard, &mut rows)?;
        if rows.is_empty() {
            return Ok(out);
        }
        let store = Arc::clone(&self.store);
        let registry = Arc::clone(&self.registry);
        let commit = tokio::task::spawn_blocking(move || {
            let applied = guard.apply(rows.clone());
            let snapshot = match registry.snapshot().apply(&applied, &guard) {
                Ok(snapshot) => snapshot,
                Err(e) => {
                    guard.undo(applied);
                    return Err(Commit::Invalid(e));
                }
            };
            match store.commit(&rows) {
                Ok(revision) => {
                    guard.revision = revision;
                    registry.install(snapshot);
                    Ok(())
                }
                Err(e) => {
                    guard.undo(applied);
                    Err(Commit::Store(e))
                }
            }
        });
        match commit.await {
            Ok(Ok(())) => Ok(out),
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
    server::serve(listener, make_service, limits, shutdown, None).await;
}
