//! Forwarding to a real upstream over sockets (SPEC §3 "On success"): the path and query, header
//! hygiene, identity headers, bodies both ways, and the upstream-side errors (413, 502, 504).

use std::time::Duration;

use crate::support::fixtures::{hs256, now_s};
use crate::support::gateway::{bearer, forward, Access, Gateway};
use crate::support::upstream::{closed_port, sha256_hex, Upstream};
use crate::support::wire::{chunked, connect_and_write, read_response};
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};

const SECRET: &str = "forwarding-test-secret-0123456789abcdef";

/// A gateway with collection `/fwd` forwarding `GET /items/:id` and `POST /upload` to
/// `upstream_url`, and a token profile and an HS256 profile granted it.
struct Forwarding {
    gateway: Gateway,
    token: Access,
    jwt: Access,
}

impl Forwarding {
    async fn start(
        upstream_url: &str,
        configure: impl FnOnce(&mut tokengate::app::ServeConfig),
    ) -> Forwarding {
        let gateway = Gateway::start_with(configure).await;
        let admin = gateway.admin;
        let fwd = admin
            .collection(
                "fwd",
                json!([
                    forward("GET", "/items/:id", upstream_url),
                    forward("POST", "/upload", upstream_url),
                ]),
            )
            .await;
        let client_id = admin.client("Forward client").await;
        let token = admin
            .profile(
                &client_id,
                json!({"name": "raw", "collections": [fwd], "auth": {"type": "token"}}),
            )
            .await;
        let jwt = admin
            .profile(
                &client_id,
                json!({"name": "signed", "collections": [fwd],
                       "auth": {"type": "jwt", "alg": "HS256", "secret": SECRET}}),
            )
            .await;
        Forwarding {
            gateway,
            token,
            jwt,
        }
    }
}

/// The values of `name` in an echo description's headers.
fn received<'a>(echo: &'a Value, name: &str) -> Vec<&'a str> {
    echo["headers"][name]
        .as_array()
        .map(|values| values.iter().map(|v| v.as_str().unwrap()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn path_query_and_headers_are_rewritten_for_the_upstream() {
    let upstream = Upstream::echo().await;
    let fwd = Forwarding::start(&upstream.url("/base"), |_| {}).await;
    let gw = &fwd.gateway;

    let reply = gw
        .call(
            "GET",
            "/fwd/items/42?x=1&y=two%20words",
            &[
                ("api-token", &fwd.token.token),
                ("x-tokengate-client-id", "forged"),
                ("X-Tokengate-Auth", "forged"),
                ("x-tokengate-anything", "forged"),
                ("x-custom", "kept"),
                ("x-echo-status", "203"),
            ],
        )
        .await;
    reply.assert_status(203);
    assert_eq!(reply.header("x-upstream"), Some("echo"));
    let echo = reply.json();
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["uri"], "/base/items/42?x=1&y=two%20words");
    let names: Vec<&str> = echo["headers"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(!names.contains(&"api-token"), "{names:?}");
    assert!(!names.contains(&"authorization"), "{names:?}");
    assert!(!names.contains(&"x-tokengate-anything"), "{names:?}");
    assert!(
        !names.contains(&"x-tokengate-caller-name"),
        "no JWT, no caller name"
    );
    assert_eq!(received(&echo, "x-custom"), ["kept"]);
    assert_eq!(
        received(&echo, "x-tokengate-client-id"),
        [fwd.token.client_id.as_str()]
    );
    assert_eq!(
        received(&echo, "x-tokengate-client-name"),
        ["Forward client"]
    );
    assert_eq!(
        received(&echo, "x-tokengate-profile-id"),
        [fwd.token.profile_id.as_str()]
    );
    assert_eq!(received(&echo, "x-tokengate-profile-name"), ["raw"]);
    assert_eq!(received(&echo, "x-tokengate-auth"), ["token"]);
    assert!(!reply.text().contains(&fwd.token.token));

    // The same through Basic: the Authorization header goes too.
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("api-token:{}", fwd.token.token));
    let reply = gw
        .call(
            "GET",
            "/fwd/items/7",
            &[("authorization", &format!("Basic {encoded}"))],
        )
        .await;
    reply.assert_status(200);
    let echo = reply.json();
    assert_eq!(echo["uri"], "/base/items/7");
    assert!(received(&echo, "authorization").is_empty());
    assert_eq!(received(&echo, "x-tokengate-auth"), ["token"]);
}

#[tokio::test]
async fn a_jwt_caller_is_named_to_the_upstream() {
    let upstream = Upstream::echo().await;
    let fwd = Forwarding::start(&upstream.url("/"), |_| {}).await;
    let jwt = hs256(
        SECRET,
        json!({"sub": fwd.jwt.token, "name": "Zoë Caller", "iat": now_s()}),
    );
    let (name, value) = bearer(&jwt);
    let reply = fwd
        .gateway
        .call(
            "GET",
            "/fwd/items/abc",
            &[(name, &value), ("x-tokengate-caller-name", "forged")],
        )
        .await;
    reply.assert_status(200);
    let echo = reply.json();
    assert_eq!(echo["uri"], "/items/abc");
    assert!(received(&echo, "authorization").is_empty());
    assert_eq!(received(&echo, "x-tokengate-auth"), ["jwt"]);
    assert_eq!(received(&echo, "x-tokengate-caller-name"), ["Zoë Caller"]);
    assert_eq!(received(&echo, "x-tokengate-profile-name"), ["signed"]);
    assert_eq!(
        received(&echo, "x-tokengate-profile-id"),
        [fwd.jwt.profile_id.as_str()]
    );
    assert!(!reply.text().contains(&jwt));
}

#[tokio::test]
async fn a_large_body_arrives_intact() {
    let upstream = Upstream::echo().await;
    let fwd = Forwarding::start(&upstream.url("/sink"), |_| {}).await;
    let body: Vec<u8> = (0..200 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let reply = crate::support::send(
        fwd.gateway.data,
        "POST",
        "/fwd/upload",
        &[
            ("api-token", &fwd.token.token),
            ("content-type", "application/octet-stream"),
        ],
        Bytes::from(body.clone()),
    )
    .await;
    reply.assert_status(200);
    let echo = reply.json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["uri"], "/sink/upload");
    assert_eq!(echo["body_len"], body.len());
    assert_eq!(echo["body_sha256"], sha256_hex(&body));
}

/// A raw `POST /fwd/upload` head with the token and `extra` header lines.
fn upload_head(token: &str, extra: &str) -> String {
    format!("POST /fwd/upload HTTP/1.1\r\nhost: test\r\napi-token: {token}\r\n{extra}\r\n")
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_with_413() {
    let upstream = Upstream::echo().await;
    let fwd = Forwarding::start(&upstream.url("/"), |config| {
        config.door_limits.max_body_bytes = 1024;
    })
    .await;
    let token = fwd.token.token.as_str();
    let headers = [("api-token", token)];
    let upload = |body: Vec<u8>| {
        crate::support::send(
            fwd.gateway.data,
            "POST",
            "/fwd/upload",
            &headers,
            Bytes::from(body),
        )
    };

    // Declared by Content-Length: refused before the upstream is contacted.
    upload(vec![b'x'; 1025])
        .await
        .assert_error(413, "payload_too_large")
        .assert_free_of(&[token]);
    assert_eq!(upstream.connections(), 0);
    let at_limit = upload(vec![b'x'; 1024]).await;
    at_limit.assert_status(200);
    assert_eq!(at_limit.json()["body_len"], 1024);

    // Chunked, so only counting tells.
    let mut request = upload_head(token, "transfer-encoding: chunked\r\n").into_bytes();
    request.extend(chunked(4000, 500));
    let mut stream = connect_and_write(fwd.gateway.data, &request).await;
    let response = read_response(&mut stream).await;
    assert_eq!(response.status, 413, "{}", response.head);
    assert_eq!(response.json()["error"], "payload_too_large");

    let mut request = upload_head(token, "transfer-encoding: chunked\r\n").into_bytes();
    request.extend(chunked(1000, 300));
    let mut stream = connect_and_write(fwd.gateway.data, &request).await;
    let response = read_response(&mut stream).await;
    assert_eq!(response.status, 200, "{}", response.head);
    assert_eq!(response.json()["body_len"], 1000);
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_bad_gateway() {
    let (_reserved, closed) = closed_port();
    let fwd = Forwarding::start(&format!("http://{closed}/"), |_| {}).await;
    fwd.gateway
        .get_with_token("/fwd/items/1", &fwd.token.token)
        .await
        .assert_error(502, "bad_gateway")
        .assert_free_of(&[&fwd.token.token]);
}

#[tokio::test]
async fn an_upstream_that_never_answers_is_a_gateway_timeout() {
    let upstream = Upstream::silent().await;
    let fwd = Forwarding::start(&upstream.url("/"), |config| {
        config.upstream_timeout = Duration::from_millis(300);
    })
    .await;
    let started = std::time::Instant::now();
    fwd.gateway
        .get_with_token("/fwd/items/1", &fwd.token.token)
        .await
        .assert_error(504, "gateway_timeout")
        .assert_free_of(&[&fwd.token.token]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(280),
        "answered before the timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "the timeout is not kept: {took:?}"
    );
}
