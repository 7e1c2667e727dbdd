//! Request hygiene over real sockets (SPEC §3 "Request hygiene"): path normalization, `:param`
//! never `.`/`..`, 400 `invalid_request` for encoded separators and control characters,
//! underscore spellings of `X-Tokengate-*`, and the client address behind `--trusted-proxies`.
//! A real upstream records what it receives, so every rule is checked on both sides.

use serde_json::{json, Value};
use tokengate::core::cidr::Cidr;

use crate::support::gateway::{forward, ping, Access, Gateway};
use crate::support::upstream::Upstream;
use crate::support::wire::{connect_and_write, read_response};

/// `/fwd` forwards `GET /items/:id` and `GET /files/:name/raw` to the echo upstream under
/// `/base`; `/other` has `GET /ping` and is granted to nobody. One token profile.
struct Hygiene {
    gateway: Gateway,
    upstream: Upstream,
    token: Access,
    /// `/ipfwd` (`GET /echo` to the upstream), for profiles with an `ip_allow`.
    ipfwd: String,
}

impl Hygiene {
    async fn start(configure: impl FnOnce(&mut tokengate::app::ServeConfig)) -> Hygiene {
        let upstream = Upstream::echo().await;
        let gateway = Gateway::start_with(configure).await;
        let admin = gateway.admin;
        let base = upstream.url("/base");
        let fwd = admin
            .collection(
                "fwd",
                json!([
                    forward("GET", "/items/:id", &base),
                    forward("GET", "/files/:name/raw", &base),
                ]),
            )
            .await;
        admin.collection("other", json!([ping("/ping")])).await;
        let ipfwd = admin
            .collection("ipfwd", json!([forward("GET", "/echo", &base)]))
            .await;
        let token = admin
            .access(
                "Hygiene client",
                json!({"name": "raw", "collections": [fwd], "auth": {"type": "token"}}),
            )
            .await;
        Hygiene {
            gateway,
            upstream,
            token,
            ipfwd,
        }
    }

    /// `GET path` with the token; the upstream's description when forwarded.
    async fn get(&self, path: &str, extra: &[(&str, &str)]) -> crate::support::Reply {
        let mut headers = vec![("api-token", self.token.token.as_str())];
        headers.extend_from_slice(extra);
        self.gateway.call("GET", path, &headers).await
    }
}

#[tokio::test]
async fn dot_segments_are_removed_before_routing_and_forwarding() {
    let h = Hygiene::start(|_| {}).await;
    // A plain request reaches the upstream under the endpoint's path.
    let echoed = h.get("/fwd/items/42", &[]).await;
    echoed.assert_status(200);
    assert_eq!(echoed.json()["uri"], "/base/items/42");

    // `..` as the :id is no id: /fwd/items/.. is /fwd/, which is no endpoint.
    for path in [
        "/fwd/items/..",
        "/fwd/items/%2e%2e",
        "/fwd/items/%2E%2E",
        "/fwd/items/.%2e",
    ] {
        h.get(path, &[]).await.assert_error(404, "not_found");
    }
    // `.` as the :id is the collection's items path itself: no endpoint either.
    h.get("/fwd/items/.", &[])
        .await
        .assert_error(404, "not_found");
    h.get("/fwd/items/%2e", &[])
        .await
        .assert_error(404, "not_found");

    // Dot-segments inside the path are resolved, and the resolved path is what goes upstream.
    let resolved = h.get("/fwd/files/x/../y/raw", &[]).await;
    resolved.assert_status(200);
    assert_eq!(resolved.json()["uri"], "/base/files/y/raw");
    let resolved = h.get("/fwd/./items/%2e/7", &[]).await;
    resolved.assert_status(200);
    assert_eq!(resolved.json()["uri"], "/base/items/7");

    // Dot-segments cannot leave the collection the path names: /fwd/items/../../other/ping is
    // /other/ping, which this profile is not granted.
    let escaped = h.get("/fwd/items/../../other/ping", &[]).await;
    escaped.assert_error(403, "forbidden");
    assert!(
        escaped.json()["message"]
            .as_str()
            .unwrap()
            .contains("not granted the collection"),
        "{}",
        escaped.text()
    );
    // Nor above the root.
    h.get("/../../../fwd/items/1", &[]).await.assert_status(200);
}

#[tokio::test]
async fn unreserved_escapes_are_decoded_and_others_kept() {
    let h = Hygiene::start(|_| {}).await;
    // `%66wd` is `fwd` and `%41` is `A`: matched and forwarded decoded.
    let decoded = h.get("/%66wd/items/%41%7e", &[]).await;
    decoded.assert_status(200);
    assert_eq!(decoded.json()["uri"], "/base/items/A~");
    // A reserved character stays encoded (upper-case hex), query untouched.
    let kept = h.get("/fwd/items/a%20b%3a?q=%2F", &[]).await;
    kept.assert_status(200);
    assert_eq!(kept.json()["uri"], "/base/items/a%20b%3A?q=%2F");
}

#[tokio::test]
async fn encoded_separators_and_control_characters_get_400() {
    let h = Hygiene::start(|_| {}).await;
    for path in [
        "/fwd/items/a%2Fb",
        "/fwd/items/a%2fb",
        "/fwd/items/..%2F..%2Fother",
        "/fwd/items/a%5Cb",
        "/fwd/items/a%5cb",
        "/fwd/items/a%00b",
        "/fwd/items/a%0d%0aX-Injected:%20yes",
        "/fwd/items/a%7F",
        "/fwd/items/a%zz",
        "/fwd/items/a%2",
        "/fwd/files/..;/raw",
        "/fwd/files/..%3b/raw",
        "/fwd/files/.;jsessionid=1/raw",
        "/fwd/items/%c0%ae%c0%ae",
    ] {
        let reply = h.get(path, &[]).await;
        reply.assert_error(400, "invalid_request");
    }
    // Refused before authentication too: the rule does not depend on the caller.
    h.gateway
        .call("GET", "/fwd/items/a%2Fb", &[])
        .await
        .assert_error(400, "invalid_request");
    // A raw backslash (which some servers read as /), over a raw socket.
    let mut stream = connect_and_write(
        h.gateway.data,
        format!(
            "GET /fwd/items/a\\b HTTP/1.1\r\nhost: x\r\napi-token: {}\r\nconnection: close\r\n\r\n",
            h.token.token
        )
        .as_bytes(),
    )
    .await;
    let raw = read_response(&mut stream).await;
    assert_eq!(raw.status, 400, "{}", raw.head);
    assert_eq!(raw.json()["error"], "invalid_request");
    // None of these reached the upstream.
    assert_eq!(h.upstream.connections(), 0);
}

#[tokio::test]
async fn underscore_spellings_of_identity_headers_never_reach_the_upstream() {
    let h = Hygiene::start(|_| {}).await;
    let reply = h
        .get(
            "/fwd/items/1",
            &[
                ("X_Tokengate_Client_Id", "spoofed"),
                ("x_tokengate_profile_name", "spoofed"),
                ("X-Tokengate_Auth", "spoofed"),
                ("x-tokengate-caller-name", "spoofed"),
                ("x_forwarded_keep", "kept"),
            ],
        )
        .await;
    reply.assert_status(200);
    let seen = reply.json();
    let headers = seen["headers"].as_object().unwrap();
    for (name, values) in headers {
        let normalized = name.to_ascii_lowercase().replace('_', "-");
        if normalized.starts_with("x-tokengate-") {
            assert!(
                !values.to_string().contains("spoofed"),
                "{name} reached the upstream: {values}"
            );
        }
    }
    assert_eq!(
        headers["x-tokengate-client-id"],
        json!([h.token.client_id.as_str()])
    );
    assert_eq!(headers["x-tokengate-auth"], json!(["token"]));
    assert!(!headers.contains_key("x_tokengate_client_id"));
    assert!(!headers.contains_key("x-tokengate-caller-name"));
    assert_eq!(headers["x_forwarded_keep"], json!(["kept"]));
}

/// A profile granted `/ipfwd`, allowed only from `cidr`.
async fn profile_from(h: &Hygiene, cidr: &str) -> Access {
    let fwd = &h.ipfwd;
    h.gateway
        .admin
        .access(
            "Addressed client",
            json!({"name": "addressed", "collections": [fwd], "auth": {"type": "token"},
                   "ip_allow": [cidr]}),
        )
        .await
}

fn forwarded_for(seen: &Value) -> Value {
    seen["headers"]["x-forwarded-for"].clone()
}

#[tokio::test]
async fn without_trusted_proxies_the_tcp_peer_is_the_client() {
    let h = Hygiene::start(|_| {}).await;
    let remote = profile_from(&h, "203.0.113.0/24").await;
    // A client claiming to be 203.0.113.9 is still 127.0.0.1: refused, and told why.
    let refused = h
        .gateway
        .call(
            "GET",
            "/ipfwd/echo",
            &[
                ("api-token", &remote.token),
                ("x-forwarded-for", "203.0.113.9"),
            ],
        )
        .await;
    refused.assert_error(403, "forbidden");
    assert!(
        refused.json()["message"]
            .as_str()
            .unwrap()
            .contains("client address"),
        "{}",
        refused.text()
    );
    // Its X-Forwarded-For is not passed on: the upstream sees only the real peer.
    let local = profile_from(&h, "127.0.0.1/32").await;
    let seen = h
        .gateway
        .call(
            "GET",
            "/ipfwd/echo",
            &[
                ("api-token", &local.token),
                ("x-forwarded-for", "203.0.113.9"),
                ("forwarded", "for=203.0.113.9"),
                ("x-real-ip", "203.0.113.9"),
            ],
        )
        .await;
    seen.assert_status(200);
    assert_eq!(forwarded_for(&seen.json()), json!(["127.0.0.1"]));
    let headers = seen.json()["headers"].clone();
    assert!(headers.get("forwarded").is_none(), "{headers}");
    assert!(headers.get("x-real-ip").is_none(), "{headers}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_the_client() {
    let h = Hygiene::start(|config| {
        config.trusted_proxies = vec![
            Cidr::parse("127.0.0.0/8").unwrap(),
            Cidr::parse("10.0.0.0/8").unwrap(),
        ];
    })
    .await;
    let remote = profile_from(&h, "203.0.113.0/24").await;
    // The right-most untrusted address is the client (10.x hops are trusted proxies).
    let seen = h
        .gateway
        .call(
            "GET",
            "/ipfwd/echo",
            &[
                ("api-token", &remote.token),
                ("x-forwarded-for", "198.51.100.1, 203.0.113.9, 10.1.1.1"),
            ],
        )
        .await;
    seen.assert_status(200);
    assert_eq!(
        forwarded_for(&seen.json()),
        json!(["198.51.100.1, 203.0.113.9, 10.1.1.1, 127.0.0.1"])
    );
    // Several X-Forwarded-For lines are one list, passed on whole.
    let seen = h
        .gateway
        .call(
            "GET",
            "/ipfwd/echo",
            &[
                ("api-token", &remote.token),
                ("x-forwarded-for", "198.51.100.1"),
                ("x-forwarded-for", "203.0.113.9"),
            ],
        )
        .await;
    seen.assert_status(200);
    assert_eq!(
        forwarded_for(&seen.json()),
        json!(["198.51.100.1, 203.0.113.9, 127.0.0.1"])
    );
    // A client forging an earlier hop does not get in: the right-most untrusted one counts.
    h.gateway
        .call(
            "GET",
            "/ipfwd/echo",
            &[
                ("api-token", &remote.token),
                ("x-forwarded-for", "203.0.113.9, 198.51.100.1"),
            ],
        )
        .await
        .assert_error(403, "forbidden");
    // No X-Forwarded-For from a trusted proxy: the proxy itself is the client.
    h.gateway
        .call("GET", "/ipfwd/echo", &[("api-token", &remote.token)])
        .await
        .assert_error(403, "forbidden");
}
