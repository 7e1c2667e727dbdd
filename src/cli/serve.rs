//! `tokengate serve`: flags, logging, the runtime, signals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::app::{start, DemoOutcome, Running, ServeConfig};
use crate::core::cidr::Cidr;
use crate::door::layout::Layout;
use crate::server::tls::TlsFiles;
use crate::store::AdminKeySource;

/// Flags of `tokengate serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data-plane address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Admin API address.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub admin_listen: SocketAddr,
    /// Directory of the embedded database (tokengate.db), admin.key and secrets.key.
    #[arg(long, default_value = "tokengate-data")]
    pub data_dir: PathBuf,
    /// A PostgreSQL store shared by many nodes (postgres://user@host/db); instead of the
    /// embedded one. Needs TOKENGATE_ADMIN_KEY and TOKENGATE_SECRETS_KEY, the same on every node.
    #[arg(
        long,
        value_name = "postgres://…",
        env = "TOKENGATE_STORE",
        hide_env_values = true
    )]
    pub store: Option<String>,
    /// Serve nothing (503 unavailable, /readyz 503) once the last successful round trip to
    /// the store is older than this many seconds, until the node has resynchronized; off by
    /// default (a node keeps serving from memory while its store is away).
    #[arg(long, value_name = "N")]
    pub max_staleness_s: Option<u64>,
    /// Seconds a revoking admin change waits for every live node to apply it.
    #[arg(long, default_value_t = 2)]
    pub propagation_timeout_s: u64,
    /// Verified-token cache capacity; 0 turns the cache off, and the memo of refused tokens.
    #[arg(long, default_value_t = 1_000_000)]
    pub cache_capacity: u64,
    /// Seed a demo collection, client and token profile on an empty store and print the token.
    #[arg(long)]
    pub demo: bool,
    /// Upstream timeout in seconds (502 when unreachable, 504 when slower).
    #[arg(long, default_value_t = 30)]
    pub upstream_timeout_s: u64,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 5 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Most open data-plane connections.
    #[arg(long, default_value_t = 25_000)]
    pub max_connections: usize,
    /// Seconds a client has to send a request head (also the idle keep-alive timeout).
    #[arg(long, default_value_t = 10)]
    pub header_read_timeout_s: u64,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Runtime layout of the data plane: `per-core` (one single-threaded runtime and
    /// SO_REUSEPORT listener per core) or `shared` (one work-stealing runtime).
    #[arg(long, default_value = "shared")]
    pub layout: Layout,
    /// Seconds a client may pause while sending a request body (then 408 or a closed
    /// connection), like nginx's client_body_timeout.
    #[arg(long, default_value_t = 30)]
    pub client_body_timeout_s: u64,
    /// Seconds an upstream may pause while sending a response body (then the stream to the
    /// client is closed), like nginx's proxy_read_timeout.
    #[arg(long, default_value_t = 30)]
    pub upstream_read_timeout_s: u64,
    /// Seconds a write to a client may make no progress (a client that stops reading its
    /// response is then cut off), like nginx's send_timeout.
    #[arg(long, default_value_t = 30)]
    pub send_timeout_s: u64,
    /// Proxies (CIDR list, comma-separated) whose X-Forwarded-For names the client; empty by
    /// default: the TCP peer is the client.
    #[arg(long, value_delimiter = ',', value_parser = parse_cidr)]
    pub trusted_proxies: Vec<Cidr>,
    /// The data plane's public base URL (`https://api.example.com`): portal URLs and the
    /// portal's OpenAPI `servers` use it; default `http://<--listen>`.
    #[arg(long, value_name = "URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,
    /// Serve the data plane over HTTPS with this PEM certificate chain (leaf first); needs
    /// --tls-key. Reloaded on SIGHUP.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The data plane's private key (PEM: PKCS#8, PKCS#1 or SEC1); needs --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve the admin API over HTTPS with this PEM certificate chain; needs --admin-tls-key.
    #[arg(long, value_name = "PATH", requires = "admin_tls_key")]
    pub admin_tls_cert: Option<PathBuf>,
    /// The admin API's private key (PEM); needs --admin-tls-cert.
    #[arg(long, value_name = "PATH", requires = "admin_tls_cert")]
    pub admin_tls_key: Option<PathBuf>,
    /// Extra trusted roots (PEM certificates) for https:// upstreams, besides the platform's,
    /// for a private CA.
    #[arg(long, value_name = "PATH")]
    pub upstream_ca_file: Option<PathBuf>,
    /// Write an access log, one JSON line per request, to this file (`-` for standard output).
    #[arg(long, value_name = "PATH|-")]
    pub access_log: Option<String>,
    /// Log line format on standard error.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// The format of the operator log on standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; ANSI colours only when standard error is a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

/// The certificate and key pair, when both are given (clap requires one with the other).
fn tls_files(cert: &Option<PathBuf>, key: &Option<PathBuf>) -> Option<TlsFiles> {
    match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    }
}

/// `scheme://host[:port]` with scheme http or https, no path, query or credentials; a
/// trailing `/` is dropped.
fn parse_public_url(text: &str) -> Result<String, String> {
    let url = text.trim().trim_end_matches('/');
    let uri: http::Uri = url
        .parse()
        .map_err(|_| format!("{text:?} is not a URL like https://api.example.com"))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http") | Some("https"));
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    if !scheme_ok || uri.host().is_none_or(str::is_empty) || authority.contains('@') {
        return Err(format!(
            "{text:?} must be http:// or https:// followed by a host (and an optional port)"
        ));
    }
    if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
        return Err(format!(
            "{text:?} must not have a path or query: the portal and its endpoints live at the root of the data plane's origin"
        ));
    }
    Ok(url.to_owned())
}

fn parse_cidr(text: &str) -> Result<Cidr, String> {
    Cidr::parse(text.trim()).map_err(|e| format!("{text:?} is not a CIDR block: {e}"))
}

impl ServeArgs {
    fn config(&self) -> ServeConfig {
        let mut config = ServeConfig {
            listen: self.listen,
            admin_listen: self.admin_listen,
            data_dir: self.data_dir.clone(),
            cache_capacity: self.cache_capacity,
            demo: self.demo,
            upstream_timeout: Duration::from_secs(self.upstream_timeout_s.max(1)),
            admin_key: std::env::var("TOKENGATE_ADMIN_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
            store: self.store.clone(),
            public_url: self.public_url.clone(),
            tls: tls_files(&self.tls_cert, &self.tls_key),
            admin_tls: tls_files(&self.admin_tls_cert, &self.admin_tls_key),
            upstream_ca_file: self.upstream_ca_file.clone(),
            max_staleness: self.max_staleness_s.map(Duration::from_secs),
            propagation_timeout: Duration::from_secs(self.propagation_timeout_s.min(60)),
            secrets_key: std::env::var(crate::store::secrets::SECRETS_KEY_ENV)
                .ok()
                .filter(|k| !k.is_empty()),
            layout: match (self.layout, self.threads) {
                (Layout::PerCore(_), Some(threads)) => Layout::PerCore(threads.max(1)),
                (layout, _) => layout,
            },
            ..ServeConfig::default()
        };
        config.door_limits.max_body_bytes = self.max_body_bytes;
        config.door_limits.client_body_timeout =
            Duration::from_secs(self.client_body_timeout_s.max(1));
        config.door_limits.upstream_read_timeout =
            Duration::from_secs(self.upstream_read_timeout_s.max(1));
        config.server_limits.send_timeout = Duration::from_secs(self.send_timeout_s.max(1));
        config.trusted_proxies = self.trusted_proxies.clone();
        config.access_log = self.access_log.clone();
        config.server_limits.max_connections = self.max_connections.max(1);
        config.server_limits.header_read_timeout =
            Duration::from_secs(self.header_read_timeout_s.clamp(1, 30));
        config
    }
}

/// Runs the server until SIGTERM or SIGINT; returns the exit code.
pub fn run(args: ServeArgs) -> i32 {
    init_logging(args.log_format);
    if let Some(url) = &args.store {
        if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            eprintln!("error: --store takes a PostgreSQL URL (postgres://user@host/db); leave it out for the embedded store in --data-dir");
            return 2;
        }
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = match runtime.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(async move {
        let config = args.config();
        let running = match start(config.clone()).await {
            Ok(running) => running,
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        };
        match &running.admin_key_source {
            AdminKeySource::Created(path) => tracing::info!(path = %path.display(), "generated a new admin key (first start)"),
            AdminKeySource::File(path) => tracing::info!(path = %path.display(), "admin key read from file"),
            AdminKeySource::Environment => tracing::info!("admin key taken from TOKENGATE_ADMIN_KEY"),
        }
        tracing::info!(data_plane = %running.data_addr, admin = %running.admin_addr, data_dir = %config.data_dir.display(), "tokengate is serving");
        match &running.demo {
            Some(DemoOutcome::Seeded { token, portal_url }) => {
                println!("demo: seeded collection 'demo' with GET /hello and GET /orders/:id, client 'Demo client', one token profile");
                println!("demo: auth token (shown once): {token}");
                println!("demo: try  curl -H 'API-Token: {token}' {}/demo/hello", running.door.public_url);
                println!("demo: the client's portal (open it in a browser): {portal_url}");
            }
            Some(DemoOutcome::StoreNotEmpty) => {
                println!(
                    "demo: seeded nothing: the store in {} already holds collections, clients or profiles (--demo only fills an empty store; use another --data-dir for a fresh demo)",
                    config.data_dir.display()
                );
            }
            None => {}
        }
        wait_for_signal(&running).await;
        tracing::info!("shutting down: draining in-flight requests");
        running.shutdown().await;
        tracing::info!("stopped");
        0
    })
}

/// Waits for SIGTERM or SIGINT; SIGHUP meanwhile reloads the TLS certificates.
async fn wait_for_signal(running: &Running) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => return,
                _ = int.recv() => return,
                _ = hup.recv() => running.reload_tls(),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = running;
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Operator logs on standard error: `TOKENGATE_LOG` filters (default `info`); colours only when
/// standard error is a terminal and `NO_COLOR` is unset, so a log file never holds ANSI codes.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOKENGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(
                std::io::stderr().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            )
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}
