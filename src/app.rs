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
use crate::door::forward::Forwarder;
use crate::door::layout::{self, Layout};
use crate::door::{DoorLimits, FrontDoor};
use crate::server::freshness::Freshness;
use crate::server::metrics::Metrics;
use crate::server::tls::{
    server_config, upstream_client_config, ReloadableCert, TlsError, TlsFiles,
};
use crate::server::ServerLimits;
use crate::store::{
    ensure_data_dir, load_or_create_admin_key, load_or_create_secrets_key, AdminKeySource,
    DataDirLock, NodeInfo, OpenEvent, PgStore, SqliteStore, Store,
};
use crate::usage::UsageSync;
use tokio_rustls::TlsAcceptor;

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
    /// A PostgreSQL URL (`--store`): many nodes share it; `None` is the embedded SQLite store.
    pub store: Option<String>,
    /// `--max-staleness-s`: refuse to serve once the store has been away this long.
    pub max_staleness: Option<Duration>,
    /// `--propagation-timeout-s`: how long a revoking change waits for the other nodes.
    pub propagation_timeout: Duration,
    /// Peers allowed to name the client in `X-Forwarded-For` (`--trusted-proxies`).
    pub trusted_proxies: Vec<Cidr>,
    /// Where the access log goes (`-` for standard output), when on.
    pub access_log: Option<String>,
    /// The data plane's public base URL (`--public-url`, no trailing `/`) for portal URLs and
    /// the portal's OpenAPI `servers`; `None` is `http://<listen address>` (`https://` with TLS).
    pub public_url: Option<String>,
    /// The data plane's certificate and key (`--tls-cert`, `--tls-key`): HTTPS when set.
    pub tls: Option<TlsFiles>,
    /// The admin API's certificate and key (`--admin-tls-cert`, `--admin-tls-key`).
    pub admin_tls: Option<TlsFiles>,
    /// A PEM file of extra roots for HTTPS upstreams (`--upstream-ca-file`).
    pub upstream_ca_file: Option<PathBuf>,
    /// Not a flag: how far ahead the data plane's and the quota sync's clocks run, for
    /// in-process tests of quota windows. 0.
    pub clock_skew: Duration,
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
            store: None,
            max_staleness: None,
            propagation_timeout: Duration::from_secs(2),
            layout: Layout::Shared,
            trusted_proxies: Vec::new(),
            access_log: None,
            public_url: None,
            tls: None,
            admin_tls: None,
            upstream_ca_file: None,
            clock_skew: Duration::ZERO,
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
    /// The listeners' certificates, by listener name, for [`Running::reload_tls`].
    certs: Vec<(&'static str, Arc<ReloadableCert>)>,
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
    /// Reads every listener's certificate and key files again (SIGHUP): new handshakes use the
    /// new certificate, open connections keep theirs. A file that does not load leaves that
    /// listener's current certificate in place and logs one line saying why.
    pub fn reload_tls(&self) {
        if self.certs.is_empty() {
            tracing::info!(
                "SIGHUP: no TLS certificate to reload (no --tls-cert or --admin-tls-cert)"
            );
        }
        for (listener, cert) in &self.certs {
            match cert.reload() {
                Ok(()) => {
                    tracing::info!(listener, cert = %cert.files().cert.display(), "TLS certificate reloaded")
                }
                Err(e) => {
                    tracing::error!(listener, error = %e, "TLS certificate NOT reloaded; still serving the previous one")
                }
            }
        }
    }

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
    /// The store was empty and got the demo data.
    Seeded {
        /// The demo profile's auth token (shown once).
        token: String,
        /// The demo client's portal URL.
        portal_url: String,
    },
    /// The store already held data, so nothing was seeded.
    StoreNotEmpty,
}

/// Loads a listener's certificate (if configured) into an acceptor and the handle that
/// reloads it.
fn listener_tls(
    files: Option<&TlsFiles>,
    listener: &str,
) -> Result<Option<(TlsAcceptor, Arc<ReloadableCert>)>, StartError> {
    let Some(files) = files else { return Ok(None) };
    let fail = |e: TlsError| StartError(format!("TLS for the {listener}: {e}"));
    let cert = Arc::new(ReloadableCert::load(files.clone()).map_err(fail)?);
    let config = server_config(cert.clone()).map_err(fail)?;
    Ok(Some((TlsAcceptor::from(config), cert)))
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
    let data_tls = listener_tls(config.tls.as_ref(), "data plane")?;
    let admin_tls = listener_tls(config.admin_tls.as_ref(), "admin API")?;
    let (upstream_tls, roots) = upstream_client_config(config.upstream_ca_file.as_deref())
        .map_err(|e| StartError(format!("--upstream-ca-file: {e}")))?;
    if roots == 0 {
        tracing::warn!("no trusted root certificates found (install ca-certificates or pass --upstream-ca-file): every https:// upstream will get 502");
    }
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

    let shared = config.store.is_some();
    if shared && config.admin_key.is_none() {
        return Err(StartError(
            "with --store postgres://… set TOKENGATE_ADMIN_KEY, the same on every node (for example: openssl rand -hex 32)".to_owned(),
        ));
    }
    let (secrets, secrets_source) =
        load_or_create_secrets_key(&config.data_dir, config.secrets_key.clone(), !shared)
            .map_err(|e| StartError(e.to_string()))?;
    tracing::info!(source = ?secrets_source, "secrets key loaded");
    // This process among the store's nodes and quota counts: random per run.
    let node_id = crate::core::token::random_id()
        .map_err(|_| StartError("the operating system's random generator failed".to_owned()))?;
    let mut cluster = None;
    let store: Arc<dyn Store> = match &config.store {
        None => {
            let (store, event) = SqliteStore::open(&config.data_dir, secrets)
                .map_err(|e| StartError(e.to_string()))?;
            if let Some(OpenEvent::Imported { renamed_to, counts }) = event {
                tracing::info!(
                    collections = counts.0,
                    clients = counts.1,
                    profiles = counts.2,
                    renamed_to = %renamed_to.display(),
                    "imported the state file of an earlier version into the database"
                );
            }
            Arc::new(store)
        }
        Some(url) => {
            let node = NodeInfo {
                id: node_id.clone(),
                listen: format!("data={data_addr} admin={admin_addr}"),
            };
            let pg = Arc::new(
                PgStore::connect(url, secrets, node)
                    .await
                    .map_err(|e| StartError(format!("cannot use the PostgreSQL store: {e}")))?,
            );
            cluster = Some(pg.clone());
            pg
        }
    };
    let (admin_key, admin_key_source) =
        load_or_create_admin_key(&config.data_dir, config.admin_key.clone())
            .map_err(|e| StartError(e.to_string()))?;
    let freshness = cluster
        .as_ref()
        .map(|_| Arc::new(Freshness::new(config.max_staleness)));

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
    let scheme = if data_tls.is_some() { "https" } else { "http" };
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{data_addr}"));
    let portal_base = public_url.clone();
    let usage_store = store.clone();
    let admin =
        tokio::task::spawn_blocking(move || Admin::open(store, admin_key, portal_base, render))
            .await
            .map_err(|e| StartError(format!("cannot load the store: {e}")))?
            .map_err(|e| StartError(e.to_string()))?
            .with_cluster(freshness.clone(), config.propagation_timeout)
            .with_data_listen(data_addr.to_string());
    let admin = Arc::new(admin);

    let mut demo = None;
    if config.demo {
        let seeded = admin
            .update(|catalog, rows| {
                if !catalog.is_empty() {
                    return Ok(None);
                }
                let mut state = crate::core::model::State::default();
                let seed = crate::tools::demo::seed_demo(&mut state)
                    .map_err(|e| ApiError::internal(&e.to_string()))?;
                *rows = crate::core::catalog::ChangeSet::from_state(&state);
                Ok(Some(seed))
            })
            .await
            .map_err(|e| StartError(format!("cannot seed the demo data: {}", e.message())))?;
        demo = Some(match seeded {
            Some(seed) => DemoOutcome::Seeded {
                portal_url: format!("{public_url}{}{}", crate::portal::PREFIX, seed.portal_key),
                token: seed.token,
            },
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
    door.freshness = freshness.clone();
    door.public_url = public_url.into();
    door.forwarded_proto = scheme;
    door.clock_skew_ms = u64::try_from(config.clock_skew.as_millis()).unwrap_or(0);
    door.forwarder = Forwarder::new(
        config.upstream_timeout,
        config.door_limits.upstream_read_timeout,
        upstream_tls,
    );
    let door = Arc::new(door);
    let _ = door_cell.set(door.clone());
    // Quota counts of earlier runs and other nodes, before the first request is decided.
    let mut usage = UsageSync::new(admin.registry(), usage_store, node_id);
    usage.clock_skew_s = config.clock_skew.as_secs();
    if let Err(e) = usage.sync_once(&door.gate).await {
        tracing::warn!(error = %e, "cannot read the quota counts from the store; counting on this node alone until it is back");
    }

    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut certs = Vec::new();
    let data_acceptor = data_tls.map(|(acceptor, cert)| {
        certs.push(("data plane", cert));
        acceptor
    });
    let admin_acceptor = admin_tls.map(|(acceptor, cert)| {
        certs.push(("admin API", cert));
        acceptor
    });
    let mut tasks = layout::spawn_data_plane(
        data_listeners,
        door.clone(),
        config.server_limits,
        shutdown_rx.clone(),
        data_acceptor,
    )
    .map_err(|e| StartError(format!("cannot start the data plane: {e}")))?;
    if let (Some(pg), Some(freshness)) = (cluster, freshness) {
        tasks.push(tokio::spawn(crate::cluster::run(
            admin.clone(),
            pg,
            freshness,
            shutdown_rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(usage.run(door.clone(), shutdown_rx.clone())));
    tasks.push(tokio::spawn(serve_admin(
        admin_listener,
        admin.clone(),
        shutdown_rx,
        admin_acceptor,
    )));
    Ok(Running {
        certs,
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
