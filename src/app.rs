//! Wiring of `tokengate serve`: store, admin key, registry, data plane and admin listeners, shutdown.
//!
//! [`start`] is also what tests and the bench harness call to run a real server in-process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{serve_admin, Admin, ApiError};
use crate::core::cidr::Cidr;
use crate::door::access_log::AccessLog;
use crate::door::layout::{self, Layout};
use crate::door::{DoorLimits, FrontDoor};
use crate::server::metrics::Metrics;
use crate::server::ServerLimits;
use crate::store::{
    ensure_data_dir, load_or_create_admin_key, load_or_create_secrets_key, AdminKeySource,
    DataDirLock, OpenEvent, SqliteStore, Store,
};

/// Everything `serve` can be told.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Data-plane address.
    pub listen: SocketAddr,
    /// Admin API address.
    pub admin_listen: SocketAddr,
    /// Directory of the embedded database, `admin.key` and `secrets.key`.
    pub data_dir: PathBuf,
    /// Verified-token cache capacity (0 turns it off).
    pub cache_capacity: u64,
    /// Seed a demo collection, client and token profile on an empty store.
    pub demo: bool,
    /// How long an upstream may take to start answering.
    pub upstream_timeout: Duration,
    /// Header and body size limits.
    pub door_limits: DoorLimits,
    /// Connection limits of the data plane.
    pub server_limits: ServerLimits,
    /// How the data plane uses the cores.
    pub layout: Layout,
    /// Admin key from the environment (`TOKENGATE_ADMIN_KEY`), overriding `admin.key`; at
    /// least [`MIN_ADMIN_KEY_CHARS`] characters.
    pub admin_key: Option<String>,
    /// The key that seals HS256 secrets, as base64 (`TOKENGATE_SECRETS_KEY`), overriding
    /// `secrets.key`.
    pub secrets_key: Option<String>,
    /// Peers allowed to name the client in `X-Forwarded-For` (`--trusted-proxies`).
    pub trusted_proxies: Vec<Cidr>,
    /// Where the access log goes (`-` for standard output), when on.
    pub access_log: Option<String>,
}

/// Shortest admin key accepted from `TOKENGATE_ADMIN_KEY`: 32 characters, what
/// `openssl rand -hex 16` prints (the generated key is longer).
pub const MIN_ADMIN_KEY_CHARS: usize = 32;

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            data_dir: PathBuf::from("tokengate-data"),
            cache_capacity: 1_000_000,
            demo: false,
            upstream_timeout: Duration::from_secs(30),
            door_limits: DoorLimits::default(),
            server_limits: ServerLimits::default(),
            admin_key: None,
            secrets_key: None,
            layout: Layout::Shared,
            trusted_proxies: Vec::new(),
            access_log: None,
        }
    }
}

/// Why the server could not start; the message says what to do.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// A running server.
pub struct Running {
    /// Where the data plane listens.
    pub data_addr: SocketAddr,
    /// Where the admin API listens.
    pub admin_addr: SocketAddr,
    /// The data plane.
    pub door: Arc<FrontDoor>,
    /// The admin API.
    pub admin: Arc<Admin>,
    /// Where the admin key came from.
    pub admin_key_source: AdminKeySource,
    /// What `--demo` did: seeded (with the demo profile's auth token), or why it did not.
    pub demo: Option<DemoOutcome>,
    shutdown: watch::Sender<bool>,
    /// Held while the server runs: no second server on this data directory.
    _lock: DataDirLock,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, drains in-flight requests (bounded), and returns when both listeners are done.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        if self.door.access_log.is_some() {
            // The writer drains its queue every WRITE_INTERVAL: give it two, so the lines of the
            // last requests reach the file before the process exits.
            tokio::time::sleep(crate::door::access_log::WRITE_INTERVAL * 2).await;
        }
    }
}

/// What `--demo` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemoOutcome {
    /// The store was empty and got the demo data; the demo profile's auth token (shown once).
    Seeded(String),
    /// The store already held data, so nothing was seeded.
    StoreNotEmpty,
}

/// Starts the data plane and the admin API.
///
/// Errors (one sentence saying what to do): a short `TOKENGATE_ADMIN_KEY`, a data directory
/// that is a file, cannot be created, or is in use by another server (named by pid), an
/// unreadable store, an address already in use, an access log that cannot be opened.
pub async fn start(config: ServeConfig) -> Result<Running, StartError> {
    if let Some(key) = &config.admin_key {
        let chars = key.chars().count();
        if chars < MIN_ADMIN_KEY_CHARS {
            return Err(StartError(format!(
                "TOKENGATE_ADMIN_KEY is {chars} characters long; it must be at least {MIN_ADMIN_KEY_CHARS} (for example the output of: openssl rand -hex 32)"
            )));
        }
    }
    ensure_data_dir(&config.data_dir).map_err(|e| StartError(e.to_string()))?;
    let lock = DataDirLock::acquire(&config.data_dir).map_err(StartError)?;
    let access_log = match &config.access_log {
        Some(target) => Some(AccessLog::open(target).map_err(|e| StartError(e.to_string()))?),
        None => None,
    };
    let (secrets, secrets_source) =
        load_or_create_secrets_key(&config.data_dir, config.secrets_key.clone(), true)
            .map_err(|e| StartError(e.to_string()))?;
    tracing::info!(source = ?secrets_source, "secrets key loaded");
    let (store, event) =
        SqliteStore::open(&config.data_dir, secrets).map_err(|e| StartError(e.to_string()))?;
    if let Some(OpenEvent::Imported { renamed_to, counts }) = event {
        tracing::info!(
            collections = counts.0,
            clients = counts.1,
            profiles = counts.2,
            renamed_to = %renamed_to.display(),
            "imported the state file of an earlier version into the database"
        );
    }
    let store: Arc<dyn Store> = Arc::new(store);
    let (admin_key, admin_key_source) =
        load_or_create_admin_key(&config.data_dir, config.admin_key.clone())
            .map_err(|e| StartError(e.to_string()))?;

    let data_listeners = layout::bind(config.listen, config.layout).map_err(|e| {
        StartError(format!(
            "cannot listen on {} (data plane): {e}",
            config.listen
        ))
    })?;
    let admin_listener = TcpListener::bind(config.admin_listen).await.map_err(|e| {
        StartError(format!(
            "cannot listen on {} (admin API): {e}",
            config.admin_listen
        ))
    })?;
    let data_addr = data_listeners.addr;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|e| StartError(e.to_string()))?;

    let metrics = Arc::new(Metrics::default());
    let door_cell: Arc<OnceLock<Arc<FrontDoor>>> = Arc::new(OnceLock::new());
    let render = {
        let door_cell = door_cell.clone();
        Arc::new(move || {
            door_cell
                .get()
                .map(|door| door.render_metrics())
                .unwrap_or_default()
        })
    };
    let admin = Admin::open(store, admin_key, format!("http://{data_addr}"), render)
        .map_err(|e| StartError(e.to_string()))?;
    let admin = Arc::new(admin);

    let mut demo = None;
    if config.demo {
        let seeded = admin
            .update(|catalog, rows| {
                if !catalog.is_empty() {
                    return Ok(None);
                }
                let mut state = crate::core::model::State::default();
                let token = crate::tools::demo::seed_demo(&mut state)
                    .map_err(|e| ApiError::internal(&e.to_string()))?;
                *rows = crate::core::catalog::ChangeSet::from_state(&state);
                Ok(Some(token))
            })
            .await
            .map_err(|e| StartError(format!("cannot seed the demo data: {}", e.message())))?;
        demo = Some(match seeded {
            Some(token) => DemoOutcome::Seeded(token),
            None => DemoOutcome::StoreNotEmpty,
        });
    }
    let mut door = FrontDoor::new(
        admin.registry(),
        config.cache_capacity,
        config.upstream_timeout,
        config.door_limits,
        metrics,
    );
    door.trusted_proxies = config.trusted_proxies.clone();
    door.access_log = access_log;
    let door = Arc::new(door);
    let _ = door_cell.set(door.clone());

    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = layout::spawn_data_plane(
        data_listeners,
        door.clone(),
        config.server_limits,
        shutdown_rx.clone(),
    )
    .map_err(|e| StartError(format!("cannot start the data plane: {e}")))?;
    tasks.push(tokio::spawn(serve_admin(
        admin_listener,
        admin.clone(),
        shutdown_rx,
    )));
    Ok(Running {
        data_addr,
        admin_addr,
        door,
        admin,
        admin_key_source,
        demo,
        shutdown,
        _lock: lock,
        tasks,
    })
}
