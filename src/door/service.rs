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
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Request, Response};
use http_body_util::{Either, Full, Limited};
use hyper::body::Incoming;
use hyper::service::Service;

use crate::core::cidr::Cidr;
use crate::core::credential;
use crate::core::gate::{
    CacheUse, ConnectionMemo, Gate, Identity, Request as GateRequest, Verdict,
};
use crate::core::hygiene::{client_address, normalize_path};
use crate::core::registry::Registry;
use crate::core::reject::Reject;
use crate::core::route::Action;
use crate::door::access_log::{AccessLog, LogLine};
pub use crate::door::clock::now_ms;
use crate::door::clock::{wall_clock_ms, Stamp};
use crate::door::forward::{
    insert_identity_headers, upstream_path, upstream_request, Downstream, Forwarder,
};
use crate::door::idle::{IdleTimeout, Stalled};
use crate::door::respond::{
    emptied, error_response, error_response_in, fixed_response_in, forget_empty, ResponseBody,
};
use crate::door::verify;
use crate::portal::{self, redact_path};
use crate::server::metrics::Metrics;

/// Size limits and body timeouts of the data plane.
#[derive(Debug, Clone, Copy)]
pub struct DoorLimits {
    /// Largest single header (name + value), bytes.
    pub max_header_bytes: usize,
    /// Largest sum of all headers, bytes.
    pub max_headers_total_bytes: usize,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Longest pause between two chunks of a request body (then 408, or the connection closes).
    pub client_body_timeout: Duration,
    /// Longest pause between two chunks of an upstream's response body (then the stream closes).
    pub upstream_read_timeout: Duration,
}

impl Default for DoorLimits {
    fn default() -> Self {
        DoorLimits {
            max_header_bytes: 16 * 1024,
            max_headers_total_bytes: 64 * 1024,
            max_body_bytes: 5 * 1024 * 1024,
            client_body_timeout: Duration::from_secs(30),
            upstream_read_timeout: Duration::from_secs(30),
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
    /// Peers allowed to name the client in `X-Forwarded-For` (`--trusted-proxies`).
    pub trusted_proxies: Vec<Cidr>,
    /// The access log, when on.
    pub access_log: Option<AccessLog>,
    /// Whether this node's view of the store is too old to serve (`--max-staleness-s`).
    pub freshness: Option<Arc<crate::server::freshness::Freshness>>,
    /// The data plane's public base URL (`--public-url`, no trailing `/`), for the portal.
    pub public_url: Box<str>,
    /// `X-Forwarded-Proto` sent upstream: `https` when the data plane terminates TLS.
    pub forwarded_proto: &'static str,
    /// How far ahead of the system clock the data plane's clock runs, milliseconds: 0, but
    /// for in-process tests that need a quota window to end soon.
    pub clock_skew_ms: u64,
}

impl FrontDoor {
    /// A front door over `registry`, with no trusted proxies and no access log.
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
            forwarder: Forwarder::new(
                upstream_timeout,
                limits.upstream_read_timeout,
                platform_roots(),
            ),
            metrics,
            limits,
            trusted_proxies: Vec::new(),
            access_log: None,
            freshness: None,
            public_url: "http://127.0.0.1:8080".into(),
            forwarded_proto: "http",
            clock_skew_ms: 0,
        }
    }

    /// The Prometheus text of the data plane's metrics.
    pub fn render_metrics(&self) -> String {
        let mut text = self
            .metrics
            .render(self.gate.cache().map_or(0, |c| c.entry_count()));
        if let Some(log) = &self.access_log {
            text.push_str("# HELP tokengate_access_log_dropped_total Access log lines dropped because the writer was behind.\n# TYPE tokengate_access_log_dropped_total counter\n");
            text.push_str(&format!(
                "tokengate_access_log_dropped_total {}\n",
                log.dropped()
            ));
        }
        text
    }

    /// Handles one request: answered at once, or a request to send upstream.
    ///
    /// The request's header map is taken out first and becomes the answer's (emptied), or goes
    /// back into the request sent upstream: see [`fixed_response_in`] for why.
    fn prepare(
        &self,
        request: Request<Incoming>,
        tcp_peer: IpAddr,
        memo: &mut ConnectionMemo,
    ) -> Prepared {
        let started = Stamp::now();
        let (mut parts, body) = request.into_parts();
        let headers = std::mem::take(&mut parts.headers);
        // Found once, for the hint below and the decision (which comes after the header and
        // path checks, so their refusals come first as before).
        let credential = credential::extract(&headers);
        // What the decision reads first and finds evicted under load (a flood of rotating
        // refused tokens: the refusal memo's set; a keep-alive client: this connection's last
        // token and route): have it on the way while the checks before the decision run.
        self.gate.prefetch(&credential);
        memo.prefetch();
        let now_ms = wall_clock_ms(started).saturating_add(self.clock_skew_ms);
        let peer_is_trusted = self.trusted_proxies.iter().any(|c| c.contains(tcp_peer));
        let peer = if peer_is_trusted {
            client_address(tcp_peer, &self.trusted_proxies, &headers)
        } else {
            tcp_peer
        };
        let mut log = self
            .access_log
            .as_ref()
            .map(|_| LogLine::new(now_ms, peer, &parts));
        if let Err(reject) = self.check_headers(&headers) {
            return self.refuse(reject, peer, parts.uri.path(), log, started, headers);
        }
        let path = match normalize_path(parts.uri.path()) {
            Ok(path) => path,
            Err(rule) => {
                return self.refuse(
                    Reject::InvalidRequest(rule),
                    peer,
                    parts.uri.path(),
                    log,
                    started,
                    headers,
                )
            }
        };
        if let Some(log) = &mut log {
            log.path = redact_path(&path).into_owned();
        }
        if self.freshness.as_ref().is_some_and(|f| f.is_stale()) {
            return self.refuse(Reject::Unavailable, peer, &path, log, started, headers);
        }
        let snapshot = self.registry.load();
        if path.starts_with(portal::PREFIX) {
            let response = portal::answer(&parts.method, &path, &snapshot, &self.public_url);
            if let (Some(line), Some(access_log)) = (&log, &self.access_log) {
                line.write(access_log, response.status().as_u16(), None, None, started);
            }
            return Prepared::Respond(response.map(Either::Left));
        }
        if let Some(flavor) = verify::flavor(&path) {
            let verdict = self.forward_auth_decide(
                flavor, &parts, &headers, credential, peer, now_ms, memo, &snapshot,
            );
            self.metrics
                .record_decision(verdict.cache, started.elapsed_ns());
            return match verdict.result {
                Ok(identity) => self.forward_auth_admit(&identity, headers, log, started),
                Err(reject) => {
                    self.refuse_forward_auth(flavor, reject, peer, log, started, headers)
                }
            };
        }
        let verdict = {
            let gate_request = GateRequest {
                method: &parts.method,
                path: &path,
                headers: &headers,
                peer,
                now_ms,
            };
            self.gate
                .decide_with_credential(&snapshot, &gate_request, credential, Some(memo))
        };
        self.metrics
            .record_decision(verdict.cache, started.elapsed_ns());
        if let Some(log) = &mut log {
            log.cache = match verdict.cache {
                CacheUse::Hit => Some("hit"),
                CacheUse::Miss => Some("miss"),
                CacheUse::NotUsed => None,
            };
        }
        let admitted = match verdict.result {
            Ok(admitted) => admitted,
            Err(reject) => {
                let refused = self.refuse(reject, peer, &path, log, started, headers);
                discard_head(parts);
                return refused;
            }
        };
        if let Some(log) = &mut log {
            let profile = admitted.identity.profile;
            log.client_id = Some(profile.client_id.to_string());
            log.profile_id = Some(profile.id.to_string());
            log.auth = Some(admitted.identity.auth.as_str());
        }
        let endpoint = admitted.endpoint;
        match &endpoint.action {
            Action::Fixed(reply) => {
                self.metrics.record_outcome(Ok(()));
                if let (Some(line), Some(access_log)) = (&log, &self.access_log) {
                    line.write(access_log, reply.status.as_u16(), None, None, started);
                }
                let response = fixed_response_in(reply, headers);
                discard_head(parts);
                Prepared::Respond(response)
            }
            Action::Upstream(upstream) => {
                let declared = headers
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                if declared.is_some_and(|len| len > self.limits.max_body_bytes as u64) {
                    return self.refuse(
                        Reject::PayloadTooLarge,
                        peer,
                        &path,
                        log,
                        started,
                        headers,
                    );
                }
                let path_and_query = upstream_path(upstream, admitted.rest_path, parts.uri.query());
                let identity = admitted.identity;
                parts.headers = headers;
                let body = Limited::new(
                    IdleTimeout::new(body, self.limits.client_body_timeout, Stalled::Client),
                    self.limits.max_body_bytes,
                );
                match upstream_request(
                    parts,
                    body,
                    upstream,
                    path_and_query,
                    &identity,
                    Downstream {
                        peer: tcp_peer,
                        peer_is_trusted,
                        proto: self.forwarded_proto,
                    },
                ) {
                    Ok(request) => Prepared::Forward(Box::new(Forwarding {
                        request,
                        log,
                        started,
                    })),
                    Err(reject) => self.refuse(reject, peer, "", log, started, HeaderMap::new()),
                }
            }
        }
    }

    fn check_headers(&self, headers: &HeaderMap) -> Result<(), Reject> {
        let mut total = 0usize;
        for (name, value) in headers {
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

    /// The decision of a forward-auth request (SPEC §3): the one the data plane would make for
    /// the original method and URI the proxy names, with the credential `prepare` took out of
    /// `headers` (the proxy passes the client's headers on). Refused when the headers naming the
    /// original request are missing, repeated or disagree ([`verify::original`]).
    #[allow(clippy::too_many_arguments)]
    fn forward_auth_decide<'s>(
        &self,
        flavor: verify::Flavor,
        parts: &http::request::Parts,
        headers: &HeaderMap,
        credential: Result<credential::Credential<'_>, Reject>,
        peer: IpAddr,
        now_ms: u64,
        memo: &'s mut ConnectionMemo,
        snapshot: &'s crate::core::registry::Snapshot,
    ) -> Verdict<Identity<'s>> {
        let original = match verify::original(flavor, &parts.method, parts.uri.path(), headers) {
            Ok(original) => original,
            Err(reject) => {
                return Verdict {
                    result: Err(reject),
                    cache: CacheUse::NotUsed,
                }
            }
        };
        let gate_request = GateRequest {
            method: &original.method,
            path: &original.path,
            headers,
            peer,
            now_ms,
        };
        let verdict =
            self.gate
                .decide_with_credential(snapshot, &gate_request, credential, Some(memo));
        Verdict {
            result: verdict.result.map(|admitted| admitted.identity),
            cache: verdict.cache,
        }
    }

    /// A forward-auth request's 200: empty, with the identity headers (SPEC §3). `headers` are
    /// the request's, and become the answer's (emptied).
    fn forward_auth_admit(
        &self,
        identity: &Identity<'_>,
        headers: HeaderMap,
        mut log: Option<LogLine>,
        started: Stamp,
    ) -> Prepared {
        self.metrics.record_outcome(Ok(()));
        if let Some(line) = &mut log {
            let profile = identity.profile;
            line.client_id = Some(profile.client_id.to_string());
            line.profile_id = Some(profile.id.to_string());
            line.auth = Some(identity.auth.as_str());
        }
        if let (Some(line), Some(access_log)) = (&log, &self.access_log) {
            line.write(access_log, 200, None, None, started);
        }
        let mut headers = emptied(headers);
        insert_identity_headers(&mut headers, identity);
        let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
        *response.headers_mut() = headers;
        Prepared::Respond(response)
    }

    fn refuse_forward_auth(
        &self,
        flavor: verify::Flavor,
        reject: Reject,
        peer: IpAddr,
        log: Option<LogLine>,
        started: Stamp,
        headers: HeaderMap,
    ) -> Prepared {
        let path = match flavor {
            verify::Flavor::Verify => verify::VERIFY,
            verify::Flavor::AuthRequest => verify::AUTH_REQUEST,
        };
        match self.refuse(reject, peer, path, log, started, headers) {
            Prepared::Respond(response) => {
                Prepared::Respond(verify::denial(flavor, reject, response))
            }
            forward => forward,
        }
    }

    /// Counts and logs a refusal and builds its answer. Refusals are logged at `debug` (the
    /// code, the status, the client address and the path; never the credential): at `info` a
    /// flood of bad tokens would cost a log write per request (about 3 µs of server CPU, measured)
    /// and fill the disk; the metrics count them, and `--access-log` records each one. The
    /// answer's fields go into `headers` (the request's map, emptied).
    fn refuse(
        &self,
        reject: Reject,
        peer: IpAddr,
        path: &str,
        log: Option<LogLine>,
        started: Stamp,
        headers: HeaderMap,
    ) -> Prepared {
        self.metrics.record_outcome(Err(reject));
        // Redacted only when the line is written (tracing evaluates fields of enabled events).
        tracing::debug!(error = reject.code(), status = reject.status().as_u16(), %peer, path = %redact_path(path), "request refused");
        if let (Some(line), Some(access_log)) = (&log, &self.access_log) {
            line.write(
                access_log,
                reject.status().as_u16(),
                Some(reject.code()),
                None,
                started,
            );
        }
        let mut response = error_response_in(reject, headers);
        if path.starts_with(portal::PREFIX) {
            portal::insert_security_headers(response.headers_mut());
        }
        Prepared::Respond(response)
    }
}

/// Drops a request head whose header map `prepare` took out: the empty map left in its place
/// is forgotten ([`forget_empty`]; about 45 instructions a request less under callgrind), the
/// method, URI and extensions drop as usual.
fn discard_head(parts: http::request::Parts) {
    let http::request::Parts { headers, .. } = parts;
    forget_empty(headers);
}

enum Prepared {
    Respond(Response<ResponseBody>),
    Forward(Box<Forwarding>),
}

/// A request on its way upstream, with what its access log line needs.
struct Forwarding {
    request: Request<crate::door::forward::UpstreamBody>,
    log: Option<LogLine>,
    started: Stamp,
}

/// The upstream TLS configuration over the platform's roots alone (a private CA is added by
/// `serve --upstream-ca-file`, which replaces the forwarder).
fn platform_roots() -> Arc<rustls::ClientConfig> {
    crate::server::tls::client_config(crate::server::tls::platform_roots().0)
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
            Prepared::Forward(forwarding) => {
                let door = self.door.clone();
                DoorFuture::Forwarding(Box::pin(async move {
                    let Forwarding {
                        request,
                        log,
                        started,
                    } = *forwarding;
                    let sent = Instant::now();
                    let result = door.forwarder.send(request).await;
                    door.metrics.record_upstream(sent.elapsed());
                    let (status, error, upstream_status) = match &result {
                        Ok(response) => (
                            response.status().as_u16(),
                            None,
                            Some(response.status().as_u16()),
                        ),
                        Err(reject) => (reject.status().as_u16(), Some(reject.code()), None),
                    };
                    if let (Some(line), Some(access_log)) = (&log, &door.access_log) {
                        line.write(access_log, status, error, upstream_status, started);
                    }
                    match result {
                        Ok(response) => {
                            door.metrics.record_outcome(Ok(()));
                            response.map(Either::Right)
                        }
                        Err(reject) => {
                            door.metrics.record_outcome(Err(reject));
                            tracing::info!(
                                error = reject.code(),
                                status = reject.status().as_u16(),
                                "upstream request failed"
                            );
                            error_response(reject)
                        }
                    }
                }))
            }
        }
    }
}
