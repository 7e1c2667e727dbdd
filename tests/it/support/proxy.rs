//! Real nginx and Caddy (Debian's packages) as child processes, each run from the config the
//! project ships (`examples/nginx/tokengate.conf`, `examples/caddy/Caddyfile`) with only its
//! three addresses replaced, in a directory of its own and on a free loopback port.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

/// A running nginx or Caddy; killed when dropped.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Which proxy it is ("nginx", "caddy").
    pub name: &'static str,
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

/// The binary `name` from `PATH` or `/usr/sbin`. When it is missing: `None` after printing
/// SKIPPED, or a panic when `CI=true` (CI must install it; `.ci/run` does).
fn binary(name: &str, package: &str, test: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/bin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        let why = format!("{name} is missing (apt-get install {package})");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: {why}; CI must install it (.ci/run does)");
        }
        eprintln!("SKIPPED {test}: {why}");
    }
    found
}

/// The shipped example at `examples/<relative>`.
fn example(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` with `from` replaced by `to`; panics when `from` is not there, so that the test keeps
/// running the example as shipped and not a config that silently lost its addresses.
fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the example config no longer has {from:?}"
    );
    text.replace(from, to)
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Proxy {
    /// nginx with `examples/nginx/tokengate.conf` in front of `api`, asking `tokengate`.
    pub async fn nginx(test: &str, tokengate: SocketAddr, api: SocketAddr) -> Option<Proxy> {
        let nginx = binary("nginx", "nginx", test)?;
        let dir = TempDir::new();
        let port = free_port();
        let site = example("nginx/tokengate.conf");
        let site = replace(
            &site,
            "server 127.0.0.1:8080;",
            &format!("server {tokengate};"),
        );
        let site = replace(&site, "server 127.0.0.1:9000;", &format!("server {api};"));
        let site = replace(&site, "listen 8000;", &format!("listen 127.0.0.1:{port};"));
        std::fs::write(dir.path().join("tokengate.conf"), site).unwrap();
        // The main context Debian's /etc/nginx/nginx.conf would give, inside the test's own
        // directory: one foreground process, logs and temp files here.
        let d = dir.path().display();
        let main = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             include {d}/tokengate.conf;\n}}\n"
        );
        let config = dir.path().join("nginx.conf");
        std::fs::write(&config, main).unwrap();
        let log = dir.path().join("error.log");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&config)
            .arg("-e")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let proxy = Proxy {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            name: "nginx",
            child,
            log,
            _dir: dir,
        };
        Some(proxy.ready().await)
    }

    /// Caddy with `examples/caddy/Caddyfile` in front of `api`, asking `tokengate`.
    pub async fn caddy(test: &str, tokengate: SocketAddr, api: SocketAddr) -> Option<Proxy> {
        let caddy = binary("caddy", "caddy", test)?;
        let dir = TempDir::new();
        let port = free_port();
        let site = example("caddy/Caddyfile");
        let site = replace(
            &site,
            "forward_auth 127.0.0.1:8080",
            &format!("forward_auth {tokengate}"),
        );
        let site = replace(
            &site,
            "reverse_proxy 127.0.0.1:9000",
            &format!("reverse_proxy {api}"),
        );
        let site = replace(&site, "\n:8000 {", &format!("\nhttp://127.0.0.1:{port} {{"));
        // Global options for a test: no admin endpoint (its port 2019 would be shared), no
        // certificates.
        let config = dir.path().join("Caddyfile");
        std::fs::write(
            &config,
            format!("{{\n\tadmin off\n\tauto_https off\n}}\n\n{site}"),
        )
        .unwrap();
        let log = dir.path().join("caddy.log");
        let child = Command::new(caddy)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&config)
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("caddy starts");
        let proxy = Proxy {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            name: "caddy",
            child,
            log,
            _dir: dir,
        };
        Some(proxy.ready().await)
    }

    /// Waits (up to 10 s) until the proxy accepts connections; panics with its log if it exits.
    async fn ready(mut self) -> Proxy {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}):\n{}", self.name, self.log());
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return self;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{} does not listen on {}:\n{}",
                self.name,
                self.addr,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What the proxy logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
