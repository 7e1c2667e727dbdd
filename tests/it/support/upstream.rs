//! Test upstreams on free loopback ports: an echo server (optionally slow), one that never
//! answers, and a port where nothing listens.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokengate::core::token::{hex, token_digest};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Notify;

/// An upstream server running on the test's runtime.
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Notified each time a request (or, for [`Upstream::silent`], a connection) arrives.
    arrived: Arc<Notify>,
    /// How many connections were accepted.
    connections: Arc<AtomicUsize>,
}

impl Upstream {
    /// Answers every request with a JSON description of what it received: `method`, `uri` (path
    /// and query), `headers` (name → list of values), `body_len` and `body_sha256`. The status is
    /// the request's `x-echo-status` header (default 200); the response carries `x-upstream: echo`.
    pub async fn echo() -> Upstream {
        Self::echo_after(Duration::ZERO).await
    }

    /// Like [`Upstream::echo`], answering only after `delay`.
    pub async fn echo_after(delay: Duration) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (arrived, connections) = (Arc::new(Notify::new()), Arc::new(AtomicUsize::new(0)));
        let (notify, counter) = (arrived.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let notify = notify.clone();
                let service = service_fn(move |request| {
                    notify.notify_one();
                    echo(request, delay)
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Upstream {
            addr,
            arrived,
            connections,
        }
    }

    /// Accepts connections and reads them, but never answers.
    pub async fn silent() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (arrived, connections) = (Arc::new(Notify::new()), Arc::new(AtomicUsize::new(0)));
        let (notify, counter) = (arrived.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                notify.notify_one();
                tokio::spawn(async move {
                    let mut sink = [0u8; 4096];
                    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                });
            }
        });
        Upstream {
            addr,
            arrived,
            connections,
        }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many connections it has accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Resolves once a request has arrived (at once if one arrived since the last call).
    pub async fn arrived(&self) {
        self.arrived.notified().await;
    }
}

async fn echo(
    request: Request<Incoming>,
    delay: Duration,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    tokio::time::sleep(delay).await;
    let mut headers = Map::new();
    for name in parts.headers.keys() {
        let values: Vec<Value> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        headers.insert(name.as_str().to_owned(), Value::Array(values));
    }
    let description = json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.path_and_query().map_or("", |pq| pq.as_str()),
        "headers": headers,
        "body_len": body.len(),
        "body_sha256": sha256_hex(&body),
    });
    let status = parts
        .headers
        .get("x-echo-status")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = Response::new(Full::new(Bytes::from(description.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
        .headers_mut()
        .insert("x-upstream", "echo".parse().unwrap());
    Ok(response)
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&token_digest(bytes))
}

/// A loopback port that is bound but not listening: connecting to it is refused. The port stays
/// reserved (no other test can take it) while the socket lives.
pub fn closed_port() -> (TcpSocket, SocketAddr) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}
