//! A tiny HTTP/1.1 client for the admin API: `http://` or verified `https://`, one request per
//! connection, 10 s timeouts.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long connecting, and then the whole exchange, may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer body read (admin answers are small; this only bounds a misbehaving server).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;
/// The environment variable holding the admin key.
pub const ADMIN_KEY_ENV: &str = "TOKENGATE_ADMIN_KEY";
/// The admin key file inside the data directory.
const ADMIN_KEY_FILE: &str = "admin.key";

/// Where the admin key came from (shown in hints; the key itself never is).
#[derive(Debug, Clone)]
pub enum KeyOrigin {
    /// The `TOKENGATE_ADMIN_KEY` environment variable.
    Environment,
    /// This file.
    File(PathBuf),
}

impl fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyOrigin::Environment => write!(f, "{ADMIN_KEY_ENV}"),
            KeyOrigin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The admin key: `TOKENGATE_ADMIN_KEY` when set and not blank, else `<data_dir>/admin.key`.
/// The error names where it looked, never a key.
pub fn load_admin_key(data_dir: &Path) -> Result<(String, KeyOrigin), String> {
    if let Ok(key) = std::env::var(ADMIN_KEY_ENV) {
        let key = key.trim();
        if !key.is_empty() {
            return Ok((key.to_owned(), KeyOrigin::Environment));
        }
    }
    let path = data_dir.join(ADMIN_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = text.trim();
            if key.is_empty() {
                Err(format!("the admin key file {} is empty", path.display()))
            } else {
                Ok((key.to_owned(), KeyOrigin::File(path)))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "no admin key: {ADMIN_KEY_ENV} is not set and {} does not exist \
             (set {ADMIN_KEY_ENV}, or pass --data-dir with the server's data directory)",
            path.display()
        )),
        Err(e) => Err(format!(
            "no admin key: {ADMIN_KEY_ENV} is not set and {} cannot be read ({e})",
            path.display()
        )),
    }
}

/// Extra trusted roots (a PEM file) for an `https://` admin URL, besides the platform's.
pub const ADMIN_CA_FILE_ENV: &str = "TOKENGATE_ADMIN_CA_FILE";

type Exchanged = (
    http::StatusCode,
    Result<http_body_util::Collected<Bytes>, Box<dyn std::error::Error + Send + Sync>>,
);

/// Sends one request over `stream` (plain or TLS) and reads the answer (at most
/// `MAX_ANSWER_BYTES`).
async fn send_over<S>(
    stream: S,
    request: http::Request<http_body_util::Full<Bytes>>,
) -> Result<Exchanged, Box<dyn std::error::Error + Send + Sync>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let collected = Limited::new(body, MAX_ANSWER_BYTES).collect().await;
    driver.abort();
    Ok((parts.status, collected))
}

/// The admin API's base URL, split for connecting.
#[derive(Debug, Clone)]
pub struct BaseUrl {
    /// The URL as given, without a trailing `/` (for messages).
    display: String,
    /// `host[:port]` for the `Host` header.
    authority: String,
    /// The host to connect to (no brackets around IPv6).
    host: String,
    /// The port to connect to.
    port: u16,
    /// A path prefix (`""` or `/something`), for an admin API behind a proxy path.
    prefix: String,
    /// `https://`: verified against the platform's roots plus `TOKENGATE_ADMIN_CA_FILE`.
    tls: bool,
}

impl BaseUrl {
    /// Parses `http://host[:port][/prefix]`.
    pub fn parse(text: &str) -> Result<BaseUrl, String> {
        let trimmed = text.trim().trim_end_matches('/');
        let bad = || format!("--admin-url {text:?} is not a URL like http://127.0.0.1:8081");
        let uri: Uri = trimmed.parse().map_err(|_| bad())?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad()),
        };
        let authority = uri.authority().ok_or_else(bad)?;
        if authority.as_str().contains('@') {
            return Err(format!(
                "--admin-url {text:?} must not contain user credentials"
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(bad());
        }
        if uri.query().is_some() {
            return Err(format!("--admin-url {text:?} must not have a query string"));
        }
        Ok(BaseUrl {
            display: trimmed.to_owned(),
            authority: authority.as_str().to_owned(),
            host,
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            tls,
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

/// Why a call got no HTTP answer.
#[derive(Debug)]
pub enum CallError {
    /// The TCP connection could not be made.
    Connect(String),
    /// Connecting or the exchange took longer than [`TIMEOUT`].
    Timeout(String),
    /// The connection broke or the answer was not HTTP.
    Protocol(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Connect(m) | CallError::Timeout(m) | CallError::Protocol(m) => {
                f.write_str(m)
            }
        }
    }
}

/// An HTTP answer from the admin API.
#[derive(Debug)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its body.
    pub body: Bytes,
}

/// A client for one admin API, with the admin key.
pub struct AdminClient {
    base: BaseUrl,
    key: String,
    origin: KeyOrigin,
    runtime: tokio::runtime::Runtime,
}

impl fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminClient")
            .field("base", &self.base.display)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl AdminClient {
    /// A client for `base` calling with `key`; builds a current-thread runtime.
    pub fn new(base: BaseUrl, key: String, origin: KeyOrigin) -> Result<AdminClient, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        Ok(AdminClient {
            base,
            key,
            origin,
            runtime,
        })
    }

    /// The base URL (for messages).
    pub fn base(&self) -> &BaseUrl {
        &self.base
    }

    /// Where the key came from (for hints).
    pub fn key_origin(&self) -> &KeyOrigin {
        &self.origin
    }

    /// Sends `method path` (path and query, starting with `/v1/…`) with an optional JSON body.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, CallError> {
        let target = format!("{}{}", self.base.prefix, path);
        let body = body.map(|b| Bytes::from(b.to_string()));
        self.runtime.block_on(self.exchange(method, target, body))
    }

    async fn exchange(
        &self,
        method: Method,
        target: String,
        body: Option<Bytes>,
    ) -> Result<Answer, CallError> {
        let url = &self.base.display;
        let connect = TcpStream::connect((self.base.host.as_str(), self.base.port));
        let stream = match tokio::time::timeout(TIMEOUT, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                return Err(CallError::Connect(format!(
                    "cannot connect to the admin API at {url}: {e} (is `tokengate serve` running? \
                     set --admin-url or TOKENGATE_ADMIN_URL)"
                )))
            }
            Err(_) => {
                return Err(CallError::Timeout(format!(
                    "connecting to the admin API at {url} took longer than {} s",
                    TIMEOUT.as_secs()
                )))
            }
        };
        let _ = stream.set_nodelay(true);
        let request = self.request(&method, &target, body).map_err(|e| {
            CallError::Protocol(format!("cannot build the request to {url}{target}: {e}"))
        })?;
        let work = async {
            if !self.base.tls {
                return send_over(stream, request).await;
            }
            let ca_file = std::env::var_os(ADMIN_CA_FILE_ENV).map(std::path::PathBuf::from);
            let (config, _) = crate::server::tls::upstream_client_config(ca_file.as_deref())
                .map_err(|e| format!("{ADMIN_CA_FILE_ENV}: {e}"))?;
            let name = rustls::pki_types::ServerName::try_from(self.base.host.clone())?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await?;
            send_over(stream, request).await
        };
        match tokio::time::timeout(TIMEOUT, work).await {
            Err(_) => Err(CallError::Timeout(format!(
                "the admin API at {url} did not answer within {} s",
                TIMEOUT.as_secs()
            ))),
            Ok(Err(e)) => Err(CallError::Protocol(format!(
                "the admin API at {url} broke the connection: {e}"
            ))),
            Ok(Ok((_, Err(e)))) => Err(CallError::Protocol(format!(
                "cannot read the answer of the admin API at {url}: {e}"
            ))),
            Ok(Ok((status, Ok(collected)))) => Ok(Answer {
                status,
                body: collected.to_bytes(),
            }),
        }
    }

    fn request(
        &self,
        method: &Method,
        target: &str,
        body: Option<Bytes>,
    ) -> Result<Request<Full<Bytes>>, http::Error> {
        let mut auth = HeaderValue::try_from(format!("Bearer {}", self.key))?;
        auth.set_sensitive(true);
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(target)
            .header(header::HOST, self.base.authority.as_str())
            .header(header::AUTHORIZATION, auth)
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("tokengate-cli/", env!("CARGO_PKG_VERSION")),
            );
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        builder.body(Full::new(body.unwrap_or_default()))
    }
}

/// Percent-encodes `text` for use as one path segment or query value: everything but
/// `A-Z a-z 0-9 - . _ ~` is escaped (and `.`, `..` wholly), so an id can never change the path
/// it is put in.
pub fn encode_component(text: &str) -> String {
    let dots_only = text.bytes().all(|b| b == b'.');
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        let plain = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~');
        if plain || (b == b'.' && !dots_only) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let base = BaseUrl::parse("http://127.0.0.1:8081/").unwrap();
        assert_eq!(
            (base.host.as_str(), base.port, base.prefix.as_str()),
            ("127.0.0.1", 8081, "")
        );
        let base = BaseUrl::parse("http://[::1]/admin").unwrap();
        assert_eq!(
            (base.host.as_str(), base.port, base.prefix.as_str()),
            ("::1", 80, "/admin")
        );
        let base = BaseUrl::parse("https://admin.example").unwrap();
        assert_eq!((base.port, base.tls), (443, true));
        assert!(!BaseUrl::parse("http://x").unwrap().tls);
        assert!(BaseUrl::parse("ftp://x").is_err());
        assert!(BaseUrl::parse("127.0.0.1:8081").is_err());
        assert!(BaseUrl::parse("http://u:p@h").is_err());
    }

    #[test]
    fn components_are_escaped() {
        assert_eq!(encode_component("ab-12_.~"), "ab-12_.~");
        assert_eq!(encode_component("a/b?c d"), "a%2Fb%3Fc%20d");
        assert_eq!(encode_component(".."), "%2E%2E");
    }
}
