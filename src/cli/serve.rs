//! `tokengate serve`: flags, logging, the runtime, signals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::app::{start, ServeConfig};
use crate::door::layout::Layout;
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
    /// Directory of the embedded file store and admin.key.
    #[arg(long, default_value = "tokengate-data")]
    pub data_dir: PathBuf,
    /// Shared PostgreSQL store (postgres://…) — not available in this build.
    #[arg(long)]
    pub store: Option<String>,
    /// Verified-token cache capacity; 0 turns the cache off.
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
            layout: match (self.layout, self.threads) {
                (Layout::PerCore(_), Some(threads)) => Layout::PerCore(threads.max(1)),
                (layout, _) => layout,
            },
            ..ServeConfig::default()
        };
        config.door_limits.max_body_bytes = self.max_body_bytes;
        config.server_limits.max_connections = self.max_connections.max(1);
        config.server_limits.header_read_timeout =
            Duration::from_secs(self.header_read_timeout_s.clamp(1, 30));
        config
    }
}

/// Runs the server until SIGTERM or SIGINT; returns the exit code.
pub fn run(args: ServeArgs) -> i32 {
    init_logging();
    if args.store.is_some() {
        eprintln!("error: --store postgres://… is not available in this build yet; use the embedded file store (--data-dir)");
        return 2;
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
        if let Some(token) = &running.demo_token {
            println!("demo: seeded collection 'demo' with GET /hello, client 'Demo client', one token profile");
            println!("demo: auth token (shown once): {token}");
            println!("demo: try  curl -H 'API-Token: {token}' http://{}/demo/hello", running.data_addr);
        }
        wait_for_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        running.shutdown().await;
        tracing::info!("stopped");
        0
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOKENGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
