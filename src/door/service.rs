//! The front door's hyper service: limits, the gate's decision, then a fixed response or the upstream.
//!
//! The decision runs synchronously inside `call`; requests answered by a fixed response or an
//! error never allocate a boxed future or touch a shared refcount.

use std::cell::RefCell;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::header::CONTENT_LENGTH;
use http::{Request, Response};
use http_body_util::{Either, Limited};
use hyper::body::Incoming;
use hyper::service::Service;

use crate::core::gate::{ConnectionMemo, Gate, Request as GateRequest};
use crate::core::registry::Registry;
use crate::core::reject::Reject;
use crate::core::route::Action;
use crate::door::forward::{upstream_path, upstream_request, Forwarder};
use crate::door::respond::{error_response, fixed_response, ResponseBody};
use crate::server::metrics::Metrics;

/// Size limits of the data plane.
#[derive(Debug, Clone, Copy)]
pub struct DoorLimits {
    /// Largest single header (name + value), bytes.
    pub max_header_bytes: usize,
    /// Largest sum of all headers, bytes.
    pub max_headers_total_bytes: usize,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
}

impl Default for DoorLimits {
    fn default() -> Self {
        DoorLimits {
            max_header_bytes: 16 * 1024,
            max_headers_total_bytes: 64 * 1024,
            max_body_bytes: 5 * 1024 * 1024,
        }
    }
}

/// Everything the data plane needs, shared by all connections.
pub struct FrontDoor {
    /// The live registry.
    pub registry: Arc<Registry>,
    /// The decision maker and its token cache.
    pub gate: Gate,
    /// The upstream client.
    pub forwarder: Forwarder,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Size limits.
    pub limits: DoorLimits,
}

impl FrontDoor {
    /// A front door over `registry`.
    pub fn new(
        registry: Arc<Registry>,
        cache_capacity: u64,
        upstream_timeout: Duration,
        limits: DoorLimits,
        metrics: Arc<Metrics>,
    ) -> FrontDoor {
        FrontDoor {
            registry,
            gate: Gate::new(cache_capacity),
            forwarder: Forwarder::new(upstream_timeout),
            metrics,
            limits,
        }
    }

    /// The Prometheus text of the data plane's metrics.
    pub fn render_metrics(&self) -> String {
        self.metrics
            .render(self.gate.cache().map_or(0, |c| c.entry_count()))
    }

    /// Handles one request: answered at once, or a request to send upstream.
    fn prepare(
        &self,
        request: Request<Incoming>,
        peer: IpAddr,
        memo: &mut ConnectionMemo,
    ) -> Prepared {
        if let Err(reject) = self.check_headers(&request) {
            return self.refuse(reject, peer, request.uri().path());
        }
        let now_ms = now_ms();
        let snapshot = self.registry.load();
        let started = Instant::now();
        let verdict = {
            let gate_request = GateRequest {
                method: request.method(),
                path: request.uri().path(),
                headers: request.headers(),
                peer,
                now_ms,
            };
            self.gate
                .decide_on_connection(&snapshot, &gate_request, Some(memo))
        };
        self.metrics
            .record_decision(verdict.cache, started.elapsed());
        let admitted = match verdict.result {
            Ok(admitted) => admitted,
            Err(reject) => return self.refuse(reject, peer, request.uri().path()),
        };
        match &admitted.endpoint.action {
            Action::Fixed(reply) => {
                self.metrics.record_outcome(Ok(()));
                Prepared::Respond(fixed_response(reply))
            }
            Action::Upstream(upstream) => {
                let declared = request
                    .headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                if declared.is_some_and(|len| len > self.limits.max_body_bytes as u64) {
                    return self.refuse(Reject::PayloadTooLarge, peer, request.uri().path());
                }
                let path_and_query =
                    upstream_path(upstream, admitted.rest_path, request.uri().query());
                let identity = admitted.identity;
                let (parts, body) = request.into_parts();
                let body = Limited::new(body, self.limits.max_body_bytes);
                match upstream_request(parts, body, upstream, path_and_query, &identity, peer) {
                    Ok(upstream_request) => Prepared::Forward(upstream_request),
                    Err(reject) => self.refuse(reject, peer, ""),
                }
            }
        }
    }

    fn check_headers(&self, request: &Request<Incoming>) -> Result<(), Reject> {
        let mut total = 0usize;
        for (name, value) in request.headers() {
            let size = name.as_str().len() + value.len();
            if size > self.limits.max_header_bytes {
                return Err(Reject::RequestHeaderTooLarge);
            }
            total += size;
        }
        if total > self.limits.max_headers_total_bytes {
            return Err(Reject::RequestHeaderTooLarge);
        }
        Ok(())
    }

    fn refuse(&self, reject: Reject, peer: IpAddr, path: &str) -> Prepared {
        self.metrics.record_outcome(Err(reject));
        tracing::debug!(error = reject.code(), status = reject.status().as_u16(), %peer, path, "request refused");
        Prepared::Respond(error_response(reject))
    }
}

enum Prepared {
    Respond(Response<ResponseBody>),
    Forward(Request<crate::door::forward::UpstreamBody>),
}

/// Wall-clock time in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The per-connection hyper service.
pub struct DoorService {
    door: Arc<FrontDoor>,
    peer: IpAddr,
    /// The connection's last verified JWT (HTTP/1.1 serves one request at a time per connection).
    memo: RefCell<ConnectionMemo>,
}

impl DoorService {
    /// The service for a connection from `peer`.
    pub fn new(door: Arc<FrontDoor>, peer: SocketAddr) -> DoorService {
        DoorService {
            door,
            peer: peer.ip(),
            memo: RefCell::new(ConnectionMemo::default()),
        }
    }
}

/// The response future: ready at once, or waiting on the upstream.
pub enum DoorFuture {
    /// Answered during `call`.
    Ready(Option<Response<ResponseBody>>),
    /// Waiting for the upstream.
    Forwarding(Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>>),
}

impl Future for DoorFuture {
    type Output = Result<Response<ResponseBody>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            DoorFuture::Ready(response) => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| error_response(Reject::BadGateway)))),
            DoorFuture::Forwarding(future) => future.as_mut().poll(cx).map(Ok),
        }
    }
}

impl Service<Request<Incoming>> for DoorService {
    type Response = Response<ResponseBody>;
    type Error = std::convert::Infallible;
    type Future = DoorFuture;

    fn call(&self, request: Request<Incoming>) -> DoorFuture {
        let prepared = match self.memo.try_borrow_mut() {
            Ok(mut memo) => self.door.prepare(request, self.peer, &mut memo),
            // Unreachable with HTTP/1.1; without the memo the shared cache still answers.
            Err(_) => self
                .door
                .prepare(request, self.peer, &mut ConnectionMemo::default()),
        };
        match prepared {
            Prepared::Respond(response) => DoorFuture::Ready(Some(response)),
            Prepared::Forward(upstream_request) => {
                let door = self.door.clone();
                DoorFuture::Forwarding(Box::pin(async move {
                    match door.forwarder.send(upstream_request).await {
                        Ok(response) => {
                            door.metrics.record_outcome(Ok(()));
                            response.map(Either::Right)
                        }
                        Err(reject) => {
                            door.metrics.record_outcome(Err(reject));
                            tracing::debug!(error = reject.code(), "upstream failed");
                            error_response(reject)
                        }
                    }
                }))
            }
        }
    }
}
