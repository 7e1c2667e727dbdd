//! Forwarding to upstreams: a pooled hyper client (HTTP and verified HTTPS), header hygiene,
//! identity headers, timeouts.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Response, Uri};
use http_body_util::Limited;
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;

use crate::core::credential::API_TOKEN;
use crate::core::gate::Identity;
use crate::core::hygiene::is_reserved_header;
use crate::core::reject::Reject;
use crate::core::route::Upstream;
use crate::door::idle::{is_stalled, IdleTimeout, Stalled};
use crate::server::tls::is_certificate_error;

/// A request body on its way upstream: cut off past the size limit, or when the client stalls.
pub type UpstreamBody = Limited<IdleTimeout<Incoming>>;

/// An upstream's response body on its way back, cut off when the upstream stalls.
pub type DownstreamBody = IdleTimeout<Incoming>;

static CLIENT_ID: HeaderName = HeaderName::from_static("x-tokengate-client-id");
static CLIENT_NAME: HeaderName = HeaderName::from_static("x-tokengate-client-name");
static PROFILE_ID: HeaderName = HeaderName::from_static("x-tokengate-profile-id");
static PROFILE_NAME: HeaderName = HeaderName::from_static("x-tokengate-profile-name");
static AUTH: HeaderName = HeaderName::from_static("x-tokengate-auth");
static CALLER_NAME: HeaderName = HeaderName::from_static("x-tokengate-caller-name");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Sends admitted requests upstream, over HTTP or HTTPS (rustls, verified; see
/// [`crate::server::tls::upstream_client_config`]).
#[derive(Clone)]
pub struct Forwarder {
    client: Client<TimedConnector<HttpsConnector<HttpConnector>>, UpstreamBody>,
    timeout: Duration,
    read_timeout: Duration,
}

impl Forwarder {
    /// A forwarder whose upstream answers must start within `timeout` (502 when unreachable,
    /// 504 when slower) and whose response bodies may pause for at most `read_timeout` between
    /// two chunks (then the stream to the client is closed). HTTPS upstreams are verified with
    /// `tls` (SNI is the upstream URL's host); connections of both kinds are pooled.
    pub fn new(timeout: Duration, read_timeout: Duration, tls: Arc<ClientConfig>) -> Forwarder {
        let connect_timeout = timeout.min(Duration::from_secs(10));
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        http.enforce_http(false);
        let https = HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        // The TLS handshake too: hyper-util may finish a connect in the background after the
        // request that started it got another pooled connection, where no request timeout
        // applies; a stalled handshake must not hold its socket forever.
        let connector = TimedConnector {
            inner: https,
            timeout: connect_timeout,
        };
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        Forwarder {
            client,
            timeout,
            read_timeout,
        }
    }

    /// Sends the request and waits for the upstream's response head (bounded by the timeout).
    /// Errors: 413 when the body grew past the limit, 408 when the client stalled mid-body,
    /// 504 when the head did not come in time, 502 otherwise.
    pub async fn send(
        &self,
        request: Request<UpstreamBody>,
    ) -> Result<Response<DownstreamBody>, Reject> {
        match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Err(_) => Err(Reject::GatewayTimeout),
            Ok(Ok(mut response)) => {
                strip_hop_by_hop(response.headers_mut());
                let read_timeout = self.read_timeout;
                Ok(response.map(|body| IdleTimeout::new(body, read_timeout, Stalled::Upstream)))
            }
            Ok(Err(error)) => {
                if is_body_too_large(&error) {
                    Err(Reject::PayloadTooLarge)
                } else if is_stalled(&error, Stalled::Client) {
                    Err(Reject::RequestTimeout)
                } else if is_certificate_error(&error) {
                    tracing::warn!(error = %error_chain(&error), "upstream TLS certificate refused");
                    Err(Reject::UpstreamCertificate)
                } else {
                    tracing::debug!(error = %error, "upstream request failed");
                    Err(Reject::BadGateway)
                }
            }
        }
    }
}

/// A connector whose connects (TCP and TLS handshake together) end after `timeout`.
#[derive(Clone)]
pub struct TimedConnector<C> {
    inner: C,
    timeout: Duration,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<C> tower_service::Service<Uri> for TimedConnector<C>
where
    C: tower_service::Service<Uri>,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err("connecting to the upstream (TCP and TLS) timed out".into()),
            }
        })
    }
}

/// An error and its sources, `: `-separated (hyper's own Display stops at the outermost).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

fn is_body_too_large(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The upstream path and query: the upstream's base path, the request path after the collection, the query.
pub fn upstream_path(upstream: &Upstream, rest_path: &str, query: Option<&str>) -> String {
    let mut path_and_query = String::with_capacity(
        upstream.base_path.len() + rest_path.len() + query.map_or(0, |q| q.len() + 1),
    );
    path_and_query.push_str(&upstream.base_path);
    path_and_query.push_str(rest_path);
    if let Some(query) = query {
        path_and_query.push('?');
        path_and_query.push_str(query);
    }
    path_and_query
}

/// Who sent the request, as the upstream should learn it.
#[derive(Debug, Clone, Copy)]
pub struct Downstream {
    /// The TCP peer, appended to `X-Forwarded-For`.
    pub peer: IpAddr,
    /// Whether that peer is a trusted proxy (then its `X-Forwarded-For`, `Forwarded` and
    /// `X-Real-IP` are kept).
    pub peer_is_trusted: bool,
    /// `X-Forwarded-Proto`: `http`, or `https` behind the TLS listener.
    pub proto: &'static str,
}

/// Builds the upstream request: URL, cleaned headers, identity headers, the body as it streams.
/// `peer` is the TCP peer, appended to `X-Forwarded-For`; the incoming `X-Forwarded-For`,
/// `Forwarded` and `X-Real-IP` are kept only when that peer is a trusted proxy
/// (`peer_is_trusted`), else they are removed (and `X-Forwarded-For` is the peer alone).
pub fn upstream_request(
    parts: http::request::Parts,
    body: UpstreamBody,
    upstream: &Upstream,
    path_and_query: String,
    identity: &Identity<'_>,
    downstream: Downstream,
) -> Result<Request<UpstreamBody>, Reject> {
    let Downstream {
        peer,
        peer_is_trusted,
        proto,
    } = downstream;
    let uri = Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| Reject::BadGateway)?;

    let original_host = parts.headers.get(header::HOST).cloned();
    let mut headers = forwardable_headers(parts.headers);
    if let Ok(host) = HeaderValue::from_str(upstream.authority.as_str()) {
        headers.insert(header::HOST, host);
    }
    if !peer_is_trusted {
        // Only a trusted proxy may tell us who came before it, in any of the usual spellings.
        headers.remove(&X_FORWARDED_FOR);
        headers.remove(header::FORWARDED);
        headers.remove("x-real-ip");
    }
    append_forwarded_for(&mut headers, peer);
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    if let Some(host) = original_host {
        headers.insert(X_FORWARDED_HOST.clone(), host);
    }
    insert_identity_headers(&mut headers, identity);

    let mut request = Request::new(body);
    *request.method_mut() = parts.method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// Adds the `X-Tokengate-*` identity headers of `identity` (SPEC §3): client and profile id and
/// name, the auth method, and the JWT `name` claim when there is one.
pub fn insert_identity_headers(headers: &mut HeaderMap, identity: &Identity<'_>) {
    let profile = identity.profile;
    headers.insert(CLIENT_ID.clone(), header_text(&profile.client_id));
    headers.insert(CLIENT_NAME.clone(), header_text(&profile.client_name));
    headers.insert(PROFILE_ID.clone(), header_text(&profile.id));
    headers.insert(PROFILE_NAME.clone(), header_text(&profile.name));
    headers.insert(
        AUTH.clone(),
        HeaderValue::from_static(identity.auth.as_str()),
    );
    if let Some(name) = identity.caller_name() {
        headers.insert(CALLER_NAME.clone(), header_text(name));
    }
}

/// The incoming headers minus credentials, hop-by-hop headers and any `X-Tokengate-*` (also
/// spelled with `_`, [`is_reserved_header`]).
fn forwardable_headers(incoming: HeaderMap) -> HeaderMap {
    let connection_listed: Vec<HeaderName> = incoming
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    let mut out = HeaderMap::with_capacity(incoming.len() + 8);
    let mut current: Option<HeaderName> = None;
    for (name, value) in incoming {
        if let Some(name) = name {
            current = Some(name);
        }
        let Some(name) = &current else { continue };
        let drop = *name == API_TOKEN
            || *name == header::AUTHORIZATION
            || is_hop_by_hop(name)
            || connection_listed.contains(name)
            || is_reserved_header(name.as_str());
        if !drop {
            out.append(name.clone(), value);
        }
    }
    out
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Removes hop-by-hop headers from an upstream response.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

/// Appends `peer` to `X-Forwarded-For`, joining every incoming line of it into one list (the
/// same list the client address was read from).
fn append_forwarded_for(headers: &mut HeaderMap, peer: IpAddr) {
    let mut value = String::new();
    for previous in headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        value.push_str(previous);
        value.push_str(", ");
    }
    value.push_str(&peer.to_string());
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
}

/// A header value from display text: UTF-8 passes as is; control characters become `?`.
fn header_text(text: &str) -> HeaderValue {
    HeaderValue::from_bytes(text.as_bytes()).unwrap_or_else(|_| {
        let cleaned: String = text
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        HeaderValue::from_bytes(cleaned.as_bytes()).unwrap_or(HeaderValue::from_static("?"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_hop_by_hop_and_tokengate_headers_are_removed() {
        let mut incoming = HeaderMap::new();
        incoming.insert("api-token", HeaderValue::from_static("secret"));
        incoming.insert("authorization", HeaderValue::from_static("Bearer x"));
        incoming.insert("x-tokengate-client-id", HeaderValue::from_static("forged"));
        incoming.insert("X-Tokengate-Whatever", HeaderValue::from_static("forged"));
        incoming.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-private"),
        );
        incoming.insert("x-private", HeaderValue::from_static("hop"));
        incoming.insert("x-keep", HeaderValue::from_static("yes"));
        incoming.append("accept", HeaderValue::from_static("a"));
        incoming.append("accept", HeaderValue::from_static("b"));
        let out = forwardable_headers(incoming);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-keep", "accept"]);
        assert_eq!(out.get_all("accept").iter().count(), 2);
    }

    #[test]
    fn header_text_keeps_utf8_and_replaces_controls() {
        assert_eq!(header_text("Zoë").as_bytes(), "Zoë".as_bytes());
        assert_eq!(header_text("a\nb").as_bytes(), b"a?b");
    }
}
