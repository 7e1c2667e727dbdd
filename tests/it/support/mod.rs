//! Shared helpers for integration tests: temporary data directories, a tiny HTTP/1.1 client, and
//! an admin API server on a free loopback port; the whole server in-process ([`gateway`]) or as
//! the real binary ([`process`]), real nginx and Caddy ([`proxy`]), a test upstream ([`upstream`]), raw-socket reads ([`wire`]) and
//! fixtures ([`fixtures`]).
#![allow(dead_code)]

pub mod browser;
pub mod fixtures;
pub mod gateway;
pub mod pg;
pub mod process;
pub mod proxy;
pub mod tls;
pub mod upstream;
pub mod wire;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokengate::admin::{serve_admin, Admin, MetricsRenderer};
use tokengate::core::catalog::ChangeSet;
use tokengate::core::model::State;
use tokengate::store::{load_or_create_secrets_key, AdminKey, SqliteStore, Store};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The embedded store over `dir`, sealing with the data directory's secrets key (created on
/// first use, as `serve` does).
pub fn open_store(dir: &Path) -> SqliteStore {
    let (secrets, _) = load_or_create_secrets_key(dir, None, true).unwrap();
    SqliteStore::open(dir, secrets).unwrap().0
}

/// Commits every object of `state` to the embedded store in `dir`: what a server started over
/// `dir` then loads.
pub fn write_state(dir: &Path, state: &State) {
    open_store(dir)
        .commit(&ChangeSet::from_state(state))
        .unwrap();
}

/// Every byte the embedded store in `dir` has written (database and WAL), for tests that look
/// for what must not be stored.
pub fn store_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["tokengate.db", "tokengate.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            all.extend_from_slice(&bytes);
        }
    }
    all
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir {
    /// Its path.
    path: PathBuf,
}

impl TempDir {
    /// A fresh, empty directory.
    pub fn new() -> TempDir {
        let name = format!(
            "tokengate-test-{}-{}",
            std::process::id(),
            tokengate::core::token::random_id().unwrap()
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Sends one request on a fresh connection; returns status, headers and the body parsed as JSON
/// (`Value::Null` for an empty body, a `Value::String` for a body that is not JSON).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (StatusCode, HeaderMap, Value) {
    let (status, headers, bytes) = request_raw(addr, method, path, headers, body).await;
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, headers, value)
}

/// Like [`request`], returning the raw body bytes.
pub async fn request_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (StatusCode, HeaderMap, Bytes) {
    let body = Bytes::from(body.unwrap_or("").to_owned());
    let reply = send(addr, method, path, headers, body).await;
    (reply.status, reply.headers, reply.body)
}

/// Any error of a test's HTTP exchange.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One HTTP response, its body read whole.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON; panics (showing the body) if it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Asserts the status is `status`, showing the body if not.
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        self
    }

    /// Asserts a front-door error per SPEC §3: the status, a JSON body of exactly `error` and
    /// `message`, and `WWW-Authenticate` on a 401 (with `error="invalid_token"` unless the
    /// credential was missing) and on nothing else; `Cache-Control: no-store` on a 404 alone
    /// (the one heuristically cacheable status among them, RFC 9110 §15.1).
    pub fn assert_error(&self, status: u16, code: &str) -> &Self {
        self.assert_error_body(status, code);
        let cache_control = self.header("cache-control");
        if status == 404 {
            assert_eq!(cache_control, Some("no-store"), "a 404 is not to be cached");
        } else {
            assert_eq!(cache_control, None, "a {status} is not cacheable anyway");
        }
        self
    }

    /// [`Reply::assert_error`] for the portal's own API, whose every answer says
    /// `Cache-Control: no-store` (SPEC §4: the portal key is in the URL).
    pub fn assert_portal_error(&self, status: u16, code: &str) -> &Self {
        self.assert_error_body(status, code);
        assert_eq!(self.header("cache-control"), Some("no-store"));
        self
    }

    /// The status, the JSON error body and the `WWW-Authenticate` rule of an error.
    fn assert_error_body(&self, status: u16, code: &str) {
        self.assert_status(status);
        assert_eq!(self.header("content-type"), Some("application/json"));
        let body = self.json();
        let members = body.as_object().expect("error body is a JSON object");
        assert_eq!(
            members.len(),
            2,
            "error body has only error and message: {body}"
        );
        assert_eq!(body["error"], code, "{body}");
        let message = body["message"].as_str().expect("message is a string");
        assert!(!message.is_empty());
        let challenge = self.header("www-authenticate");
        match (status, code) {
            (401, "missing_credentials") => {
                assert_eq!(challenge, Some(r#"Bearer realm="tokengate""#))
            }
            (401, _) => assert_eq!(
                challenge,
                Some(r#"Bearer realm="tokengate", error="invalid_token""#)
            ),
            _ => assert_eq!(challenge, None, "only a 401 carries WWW-Authenticate"),
        }
    }

    /// Asserts that neither the body nor any header value contains any of `secrets`.
    pub fn assert_free_of(&self, secrets: &[&str]) -> &Self {
        let text = self.text();
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            assert!(!text.contains(secret), "the body leaks a secret: {text}");
            for (name, value) in &self.headers {
                let value = String::from_utf8_lossy(value.as_bytes());
                assert!(!value.contains(secret), "header {name} leaks a secret");
            }
        }
        self
    }
}

/// Sends one request on a fresh connection and reads the whole response.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    try_send(addr, method, path, headers, body.into())
        .await
        .unwrap_or_else(|e| panic!("{method} {path} to {addr} failed: {e}"))
}

/// Like [`send`], returning connection errors instead of panicking (for servers that may die).
pub async fn try_send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Reply, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    exchange(stream, addr, method, path, headers, body).await
}

/// Like [`send`], from the local address `from` (any of 127.0.0.0/8 works on loopback): for
/// tests in which the client's address matters, behind a proxy on the same machine.
pub async fn send_from(
    from: std::net::IpAddr,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let stream = socket
        .connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {from} -> {addr}: {e}"));
    exchange(stream, addr, method, path, headers, Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("{method} {path} to {addr} from {from} failed: {e}"))
}

/// One request on `stream` (with `Host: addr`); reads the whole response.
async fn exchange(
    stream: TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Reply, BoxError> {
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = build_request(addr, method, path, headers, body)?;
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// `method path` with `Host: addr`, `headers` and `body`.
fn build_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Request<Full<Bytes>>, http::Error> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(body))
}

/// One keep-alive HTTP/1.1 connection for many requests in a row.
pub struct KeepAlive {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
}

impl KeepAlive {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> KeepAlive {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        KeepAlive { sender, addr }
    }

    /// `GET path` with `headers`; returns the status (the body is read and dropped).
    pub async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> u16 {
        let request = build_request(self.addr, "GET", path, headers, Bytes::new()).unwrap();
        self.sender.ready().await.unwrap();
        let response = self.sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        response.into_body().collect().await.unwrap();
        status
    }
}

/// The admin key every [`AdminServer`] uses unless told otherwise.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef-0123";

/// An admin API served on a free loopback port over a file store in a temporary directory.
pub struct AdminServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The admin, for direct inspection of state and registry.
    pub admin: Arc<Admin>,
    /// The data directory (removed on drop unless the test keeps it).
    pub dir: Arc<TempDir>,
    /// Turn to `true` to stop.
    shutdown: watch::Sender<bool>,
    /// The `serve_admin` task.
    task: JoinHandle<()>,
}

impl AdminServer {
    /// Starts over a fresh data directory.
    pub async fn start() -> AdminServer {
        Self::start_in(Arc::new(TempDir::new())).await
    }

    /// Starts over `dir` with the embedded store.
    pub async fn start_in(dir: Arc<TempDir>) -> AdminServer {
        let store: Arc<dyn Store> = Arc::new(open_store(dir.path()));
        Self::start_with_store(dir, store).await
    }

    /// Starts over any store.
    pub async fn start_with_store(dir: Arc<TempDir>, store: Arc<dyn Store>) -> AdminServer {
        let metrics: MetricsRenderer =
            Arc::new(|| "# TYPE tokengate_up gauge\ntokengate_up 1\n".to_owned());
        let admin = Admin::open(
            store,
            AdminKey::from_secret(ADMIN_KEY),
            "http://gateway.test:8080/",
            metrics,
        )
        .unwrap();
        let admin = Arc::new(admin);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, stop) = watch::channel(false);
        let task = tokio::spawn(serve_admin(listener, Arc::clone(&admin), stop, None));
        AdminServer {
            addr,
            admin,
            dir,
            shutdown,
            task,
        }
    }

    /// Calls the admin API with the admin key; `body` is JSON.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let auth = format!("Bearer {ADMIN_KEY}");
        let text = body.map(|b| b.to_string());
        let (status, _, value) = request(
            self.addr,
            method,
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            text.as_deref(),
        )
        .await;
        (status, value)
    }

    /// Stops the server and waits for `serve_admin` to return.
    pub async fn stop(self) -> Arc<TempDir> {
        self.shutdown.send(true).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), self.task)
            .await
            .expect("serve_admin did not stop")
            .unwrap();
        self.dir
    }
}

/// Unix permission bits of `path`.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
