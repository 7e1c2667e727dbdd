//! HTTP/1.1 listener plumbing: accept loop, connection cap, optional TLS handshake, header
//! timeout, graceful drain.

use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::server::head_watch::HeadWatch;
use crate::server::metrics::Metrics;
use crate::server::send_timeout::SendTimeout;
use crate::server::stop_signal::StopSignal;

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Most open connections; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// A request head must arrive within this time; an idle keep-alive connection is closed after it too.
    pub header_read_timeout: Duration,
    /// Hard cap on the request head hyper buffers (answered with a bare 431 beyond it).
    pub max_head_bytes: usize,
    /// How long a shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// Longest time a write to the client may make no progress (nginx's `send_timeout`).
    pub send_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 25_000,
            header_read_timeout: Duration::from_secs(10),
            max_head_bytes: 96 * 1024,
            drain_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves HTTP/1.1 on `listener` until `shutdown` turns true, then drains (bounded). When
/// `metrics` is given, its `open_connections` gauge follows the connections of this listener.
/// With `tls`, every connection first completes a TLS handshake, which must finish within the
/// header read timeout; a failed or stalled handshake (a plain-HTTP request included) closes the
/// connection.
pub async fn serve<F, S, B>(
    listener: TcpListener,
    make_service: F,
    limits: ServerLimits,
    mut shutdown: watch::Receiver<bool>,
    metrics: Option<Arc<Metrics>>,
    tls: Option<TlsAcceptor>,
) where
    F: Fn(SocketAddr) -> S,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let mut builder = http1::Builder::new();
    // No hyper timer, so no hyper header-read timeout: run_connection keeps it (head_watch.rs).
    // hyper's vectored writes stay on: SendTimeout sends a small response's slices as one
    // buffer (coalesce.rs), and a large body goes out uncopied.
    builder
        .keep_alive(true)
        .max_buf_size(limits.max_head_bytes.max(8192))
        .max_header_size(limits.max_head_bytes);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Given when the accept loop ends (or this future is dropped); every open connection then
    // shuts down gracefully.
    let stop = StopSignal::new();
    let _stop_on_drop = StopOnDrop(stop.clone());

    loop {
        if *shutdown.borrow() {
            break;
        }
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => break },
            _ = stopped(&mut shutdown) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => break,
        };
        let _ = stream.set_nodelay(true);
        let service = make_service(peer);
        let builder = builder.clone();
        let stop = stop.clone();
        let open = metrics.clone().map(OpenConnection::new);
        // Two tasks, not one with a branch: a task is as large as its largest state, and a plain
        // connection must not carry room for a TLS session while it idles.
        match tls.clone() {
            None => {
                tokio::spawn(async move {
                    let stream = SendTimeout::new(stream, limits.send_timeout);
                    let io = TokioIo::new(stream);
                    run_connection(&builder, io, service, limits.header_read_timeout, &stop).await;
                    drop(open);
                    drop(permit);
                });
            }
            Some(acceptor) => {
                let mut connection_shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let stream = SendTimeout::new(stream, limits.send_timeout);
                    let handshake = tokio::select! {
                        done = tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)) => done,
                        _ = stopped(&mut connection_shutdown) => return,
                    };
                    match handshake {
                        Ok(Ok(stream)) => {
                            let io = TokioIo::new(stream);
                            let timeout = limits.header_read_timeout;
                            run_connection(&builder, io, service, timeout, &stop).await
                        }
                        Ok(Err(error)) => tracing::debug!(%error, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                    drop(open);
                    drop(permit);
                });
            }
        }
    }

    // Stop listening first: a client that connects while we drain is refused at once instead of
    // waiting in the listen backlog for an accept that never comes.
    drop(listener);
    stop.stop();
    // Drain: every connection returns its permit when done.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.drain_timeout, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("shutdown drain timed out; closing remaining connections");
    }
}

/// Serves one connection until it ends, until a request head takes longer than
/// `header_read_timeout` (counted from the connection opening or the previous response ending;
/// then it is closed without an answer), or until `stop` is given (then gracefully: an idle
/// connection closes at once, a request in flight finishes first).
async fn run_connection<IO, S, B>(
    builder: &http1::Builder,
    io: IO,
    service: S,
    header_read_timeout: Duration,
    stop: &Arc<StopSignal>,
) where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let mut watch = HeadWatch::new(header_read_timeout);
    let connection = builder.serve_connection(io, watch.service(service));
    tokio::pin!(connection);
    let mut registration = stop.register();
    let mut draining = false;
    let result = std::future::poll_fn(|cx| {
        if !draining && registration.is_stopping(cx) {
            connection.as_mut().graceful_shutdown();
            draining = true;
        }
        match connection.as_mut().poll(cx) {
            Poll::Ready(result) => Poll::Ready(Some(result)),
            Poll::Pending => watch.poll_expired(cx).map(|()| None),
        }
    })
    .await;
    match result {
        Some(Ok(())) => {}
        Some(Err(error)) => tracing::trace!(%error, "connection ended with an error"),
        // Dropping the connection closes it, as hyper does on its own header timeout.
        None => tracing::trace!("no request head within the header read timeout; closed"),
    }
}

/// Gives the stop signal when dropped, so connections stop even if `serve` is dropped early.
struct StopOnDrop(Arc<StopSignal>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// One open connection on the gauge: added when made, removed when dropped (however the
/// connection task ends).
struct OpenConnection(Arc<Metrics>);

impl OpenConnection {
    fn new(metrics: Arc<Metrics>) -> Self {
        metrics.open_connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection(metrics)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves once `shutdown` is true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}
