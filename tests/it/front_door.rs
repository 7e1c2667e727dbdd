//! The front door over real sockets (SPEC §3): every row of the error table, refresh against the
//! verified-token cache, grace periods, fixed responses, header limits and connection timeouts.
//! Profiles are set up through the admin API over HTTP, as an operator would.

use std::time::{Duration, Instant};

use crate::support::fixtures::{hs256, now_s};
use crate::support::gateway::{bearer, ping, Access, Gateway};
use crate::support::wire::{closed_within, connect_and_write, read_response};
use base64::Engine;
use serde_json::json;

const SECRET: &str = "front-door-test-secret-0123456789abcdef";
const OTHER_SECRET: &str = "another-secret-of-enough-length-0123456789";

/// `/api` (granted) and `/other` (not granted), each with `GET /ping`; a token profile and an
/// HS256 profile of two clients, both granted `/api`.
struct Door {
    gateway: Gateway,
    api: String,
    token: Access,
    jwt: Access,
}

impl Door {
    async fn start() -> Door {
        let gateway = Gateway::start().await;
        let admin = gateway.admin;
        let api = admin.collection("api", json!([ping("/ping")])).await;
        admin.collection("other", json!([ping("/ping")])).await;
        let token = admin
            .access(
                "Token client",
                json!({"collections": [api], "auth": {"type": "token"}}),
            )
            .await;
        let jwt = admin
            .access(
                "JWT client",
                json!({"collections": [api],
                       "auth": {"type": "jwt", "alg": "HS256", "secret": SECRET}}),
            )
            .await;
        Door {
            gateway,
            api,
            token,
            jwt,
        }
    }

    /// A JWT for the HS256 profile, valid for an hour, `name` "Jane Caller".
    fn jwt(&self) -> String {
        hs256(
            SECRET,
            json!({"sub": self.jwt.token, "name": "Jane Caller", "iat": now_s(), "exp": now_s() + 3600}),
        )
    }

    /// Every secret a response must never show.
    fn secrets(&self) -> Vec<String> {
        vec![
            self.token.token.clone(),
            self.jwt.token.clone(),
            SECRET.to_owned(),
            self.jwt(),
        ]
    }

    /// Sends `GET path` with `headers`, asserts the error, and that no secret leaks.
    async fn refused(&self, path: &str, headers: &[(&str, &str)], status: u16, code: &str) {
        let reply = self.gateway.call("GET", path, headers).await;
        reply.assert_error(status, code);
        let secrets = self.secrets();
        let mut secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        secrets.extend(headers.iter().map(|(_, value)| *value));
        reply.assert_free_of(&secrets);
    }
}

fn basic(token: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("api-token:{token}"));
    format!("Basic {encoded}")
}

#[tokio::test]
async fn valid_credentials_of_each_kind_are_admitted() {
    let door = Door::start().await;
    let gw = &door.gateway;
    let jwt = door.jwt();
    let lower_bearer = format!("bearer {jwt}");
    let admitted: [(&str, String); 4] = [
        ("api-token", door.token.token.clone()),
        ("authorization", basic(&door.token.token)),
        bearer(&jwt),
        ("authorization", lower_bearer),
    ];
    for (name, value) in &admitted {
        let reply = gw.call("GET", "/api/ping", &[(name, value)]).await;
        reply.assert_status(200);
        assert_eq!(reply.json(), json!({"pong": true}), "{name}: {value}");
    }
}

#[tokio::test]
async fn missing_credentials_even_for_unknown_paths() {
    let door = Door::start().await;
    for path in ["/api/ping", "/api/nothing-here", "/nowhere", "/"] {
        door.refused(path, &[], 401, "missing_credentials").await;
    }
}

#[tokio::test]
async fn malformed_unknown_and_bad_signature_tokens_are_invalid() {
    let door = Door::start().await;
    let unknown = "ab".repeat(32);
    let unknown_sub = hs256(SECRET, json!({"sub": unknown, "iat": now_s()}));
    let bad_signature = hs256(OTHER_SECRET, json!({"sub": door.jwt.token, "iat": now_s()}));
    let good = door.jwt();
    let (signing_input, _) = good.rsplit_once('.').unwrap();
    let tampered = format!("{signing_input}.{}", "A".repeat(43));
    let none_alg = {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let claims = json!({"sub": door.jwt.token}).to_string();
        format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(&claims))
    };
    let cases: Vec<(&str, String)> = vec![
        // Malformed.
        ("api-token", "not a token".into()),
        ("authorization", "Bearer not-a-jwt".into()),
        ("authorization", "Bearer a.b.c".into()),
        ("authorization", "Basic !!!".into()),
        ("authorization", "Digest abc".into()),
        bearer(&none_alg),
        // Unknown.
        ("api-token", unknown.clone()),
        ("authorization", basic(&unknown)),
        bearer(&unknown_sub),
        // Bad signature.
        bearer(&bad_signature),
        bearer(&tampered),
    ];
    for (name, value) in &cases {
        door.refused("/api/ping", &[(name, value)], 401, "invalid_token")
            .await;
    }
    // Refused before routing: an invalid token learns nothing about paths.
    door.refused("/nowhere", &[("api-token", &unknown)], 401, "invalid_token")
        .await;
}

#[tokio::test]
async fn a_credential_of_the_other_method_is_invalid() {
    let door = Door::start().await;
    // The JWT profile's auth token sent raw, as API-Token and as Basic.
    door.refused(
        "/api/ping",
        &[("api-token", &door.jwt.token)],
        401,
        "invalid_token",
    )
    .await;
    let basic_jwt_profile = basic(&door.jwt.token);
    door.refused(
        "/api/ping",
        &[("authorization", &basic_jwt_profile)],
        401,
        "invalid_token",
    )
    .await;
    // A well-signed JWT whose key claim is the token profile's auth token.
    let jwt = hs256(SECRET, json!({"sub": door.token.token, "iat": now_s()}));
    let (name, value) = bearer(&jwt);
    door.refused("/api/ping", &[(name, &value)], 401, "invalid_token")
        .await;
}

#[tokio::test]
async fn more_than_one_credential_is_refused() {
    let door = Door::start().await;
    let token = door.token.token.as_str();
    let jwt = door.jwt();
    let (name, value) = bearer(&jwt);
    door.refused(
        "/api/ping",
        &[("api-token", token), ("api-token", token)],
        401,
        "multiple_credentials",
    )
    .await;
    door.refused(
        "/api/ping",
        &[("api-token", token), (name, &value)],
        401,
        "multiple_credentials",
    )
    .await;
    door.refused(
        "/api/ping",
        &[(name, &value), (name, &value)],
        401,
        "multiple_credentials",
    )
    .await;
}

#[tokio::test]
async fn expired_and_not_yet_valid_jwts() {
    let door = Door::start().await;
    let sub = &door.jwt.token;
    let expired = hs256(SECRET, json!({"sub": sub, "exp": now_s() - 3600}));
    let (name, value) = bearer(&expired);
    door.refused("/api/ping", &[(name, &value)], 401, "token_expired")
        .await;
    let early = hs256(SECRET, json!({"sub": sub, "nbf": now_s() + 3600}));
    let (name, value) = bearer(&early);
    door.refused("/api/ping", &[(name, &value)], 401, "token_not_yet_valid")
        .await;
    // Within the default 60 s leeway: admitted.
    let just_expired = hs256(SECRET, json!({"sub": sub, "exp": now_s() - 10}));
    door.gateway
        .get_with_jwt("/api/ping", &just_expired)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn disabled_profiles_and_clients_are_invalid() {
    let door = Door::start().await;
    let (gw, admin) = (&door.gateway, door.gateway.admin);
    let jwt = door.jwt();
    let (name, value) = bearer(&jwt);
    // Warm the cache so that a cached verification is what must be voided.
    gw.get_with_jwt("/api/ping", &jwt).await.assert_status(200);

    admin
        .patch_profile(&door.token.profile_id, json!({"active": false}))
        .await;
    door.refused(
        "/api/ping",
        &[("api-token", &door.token.token)],
        401,
        "invalid_token",
    )
    .await;
    admin
        .patch_profile(&door.token.profile_id, json!({"active": true}))
        .await;
    gw.get_with_token("/api/ping", &door.token.token)
        .await
        .assert_status(200);

    admin
        .patch_profile(&door.jwt.profile_id, json!({"active": false}))
        .await;
    door.refused("/api/ping", &[(name, &value)], 401, "invalid_token")
        .await;
    admin
        .patch_profile(&door.jwt.profile_id, json!({"active": true}))
        .await;
    gw.get_with_jwt("/api/ping", &jwt).await.assert_status(200);

    for access in [&door.token, &door.jwt] {
        admin
            .patch_client(&access.client_id, json!({"active": false}))
            .await;
    }
    door.refused(
        "/api/ping",
        &[("api-token", &door.token.token)],
        401,
        "invalid_token",
    )
    .await;
    door.refused("/api/ping", &[(name, &value)], 401, "invalid_token")
        .await;
}

#[tokio::test]
async fn forbidden_by_ip_allow_list_or_ungranted_collection() {
    let door = Door::start().await;
    let admin = door.gateway.admin;
    door.refused(
        "/other/ping",
        &[("api-token", &door.token.token)],
        403,
        "forbidden",
    )
    .await;
    let jwt = door.jwt();
    let (name, value) = bearer(&jwt);
    door.refused("/other/ping", &[(name, &value)], 403, "forbidden")
        .await;

    let far = admin
        .access(
            "Far away",
            json!({"collections": [door.api], "auth": {"type": "token"}, "ip_allow": ["10.0.0.0/8"]}),
        )
        .await;
    door.refused("/api/ping", &[("api-token", &far.token)], 403, "forbidden")
        .await;
    let near = admin
        .access(
            "Nearby",
            json!({"collections": [door.api], "auth": {"type": "token"},
                   "ip_allow": ["10.0.0.0/8", "127.0.0.0/8"]}),
        )
        .await;
    door.gateway
        .get_with_token("/api/ping", &near.token)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn not_found_only_for_authenticated_callers() {
    let door = Door::start().await;
    let token = door.token.token.as_str();
    for path in ["/api/nothing-here", "/nowhere", "/api/ping/extra"] {
        door.refused(path, &[("api-token", token)], 404, "not_found")
            .await;
        door.refused(path, &[], 401, "missing_credentials").await;
    }
    // The right path with the wrong method is no endpoint either.
    let reply = door
        .gateway
        .call("POST", "/api/ping", &[("api-token", token)])
        .await;
    reply.assert_error(404, "not_found");
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let door = Door::start().await;
    let limited = door
        .gateway
        .admin
        .access(
            "Limited",
            json!({"collections": [door.api], "auth": {"type": "token"},
                   "policy": {"rate_limit": {"requests": 2, "per_s": 60}}}),
        )
        .await;
    for _ in 0..2 {
        door.gateway
            .get_with_token("/api/ping", &limited.token)
            .await
            .assert_status(200);
    }
    let reply = door
        .gateway
        .get_with_token("/api/ping", &limited.token)
        .await;
    reply
        .assert_error(429, "rate_limited")
        .assert_free_of(&[&limited.token]);
    let retry_after: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    // Per profile: the other profiles are not limited.
    door.gateway
        .get_with_token("/api/ping", &door.token.token)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn oversized_headers_get_431_json() {
    let door = Door::start().await;
    let token = door.token.token.as_str();
    let big = "a".repeat(17 * 1024);
    door.refused(
        "/api/ping",
        &[("api-token", token), ("x-big", &big)],
        431,
        "request_header_too_large",
    )
    .await;
    // Each under 16 KiB, together over 64 KiB.
    let part = "b".repeat(15 * 1024);
    let many: Vec<(String, &str)> = (0..5)
        .map(|i| (format!("x-part-{i}"), part.as_str()))
        .collect();
    let mut headers: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    headers.push(("api-token", token));
    door.refused("/api/ping", &headers, 431, "request_header_too_large")
        .await;
    // Under both limits: admitted.
    headers.drain(..2);
    door.gateway
        .call("GET", "/api/ping", &headers)
        .await
        .assert_status(200);
    // Past hyper's own cap on the request head (ServerLimits::max_head_bytes, 96 KiB) hyper
    // answers before the door sees the request: still 431, but with an empty body.
    let huge = "c".repeat(100 * 1024);
    let reply = door
        .gateway
        .call(
            "GET",
            "/api/ping",
            &[("api-token", token), ("x-huge", &huge)],
        )
        .await;
    reply.assert_status(431);
}

#[tokio::test]
async fn refresh_voids_a_cached_jwt_and_a_raw_token_on_the_next_request() {
    let door = Door::start().await;
    let (gw, admin) = (&door.gateway, door.gateway.admin);
    let jwt = door.jwt();
    let hits = || admin.metric("tokengate_token_cache_hits_total");
    let misses = || admin.metric("tokengate_token_cache_misses_total");

    let (hits0, misses0) = (hits().await, misses().await);
    gw.get_with_jwt("/api/ping", &jwt).await.assert_status(200);
    assert_eq!(misses().await, misses0 + 1, "the first request verifies");
    gw.get_with_jwt("/api/ping", &jwt).await.assert_status(200);
    assert_eq!(hits().await, hits0 + 1, "the second is a cache hit");

    let new_token = admin.refresh(&door.jwt.profile_id, None).await;
    let (name, value) = bearer(&jwt);
    door.refused("/api/ping", &[(name, &value)], 401, "invalid_token")
        .await;
    let new_jwt = hs256(SECRET, json!({"sub": new_token, "iat": now_s()}));
    gw.get_with_jwt("/api/ping", &new_jwt)
        .await
        .assert_status(200);

    gw.get_with_token("/api/ping", &door.token.token)
        .await
        .assert_status(200);
    let new_token = admin.refresh(&door.token.profile_id, Some(json!({}))).await;
    door.refused(
        "/api/ping",
        &[("api-token", &door.token.token)],
        401,
        "invalid_token",
    )
    .await;
    gw.get_with_token("/api/ping", &new_token)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn grace_keeps_the_old_token_working_then_ends() {
    let door = Door::start().await;
    let (gw, admin) = (&door.gateway, door.gateway.admin);
    let old_jwt = door.jwt();
    gw.get_with_jwt("/api/ping", &old_jwt)
        .await
        .assert_status(200);

    let refreshed_at = Instant::now();
    let new_raw = admin
        .refresh(&door.token.profile_id, Some(json!({"grace_s": 2})))
        .await;
    let new_sub = admin
        .refresh(&door.jwt.profile_id, Some(json!({"grace_s": 2})))
        .await;
    let new_jwt = hs256(SECRET, json!({"sub": new_sub, "iat": now_s()}));
    for _ in 0..2 {
        gw.get_with_token("/api/ping", &door.token.token)
            .await
            .assert_status(200);
        gw.get_with_token("/api/ping", &new_raw)
            .await
            .assert_status(200);
        gw.get_with_jwt("/api/ping", &old_jwt)
            .await
            .assert_status(200);
        gw.get_with_jwt("/api/ping", &new_jwt)
            .await
            .assert_status(200);
    }

    tokio::time::sleep(Duration::from_millis(2500).saturating_sub(refreshed_at.elapsed())).await;
    door.refused(
        "/api/ping",
        &[("api-token", &door.token.token)],
        401,
        "invalid_token",
    )
    .await;
    let (name, value) = bearer(&old_jwt);
    door.refused("/api/ping", &[(name, &value)], 401, "invalid_token")
        .await;
    gw.get_with_token("/api/ping", &new_raw)
        .await
        .assert_status(200);
    gw.get_with_jwt("/api/ping", &new_jwt)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn fixed_responses_come_back_as_configured_and_healthz_answers() {
    let gw = Gateway::start().await;
    let admin = gw.admin;
    let mock = admin
        .collection(
            "mock",
            json!([
                {"name": "created", "method": "POST", "path": "/orders/:id",
                 "response": {"status": 201,
                              "headers": {"x-mock": "yes", "content-type": "application/vnd.test+json"},
                              "body": {"id": 42, "items": [1, 2, 3], "note": "Zoë"}}},
                {"name": "teapot", "method": "GET", "path": "/tea",
                 "response": {"status": 418, "body": "short and stout"}}
            ]),
        )
        .await;
    let access = admin
        .access(
            "Mock client",
            json!({"collections": [mock], "auth": {"type": "token"}}),
        )
        .await;
    let reply = gw
        .call("POST", "/mock/orders/7", &[("api-token", &access.token)])
        .await;
    reply.assert_status(201);
    assert_eq!(reply.header("x-mock"), Some("yes"));
    assert_eq!(
        reply.header("content-type"),
        Some("application/vnd.test+json")
    );
    assert_eq!(
        reply.json(),
        json!({"id": 42, "items": [1, 2, 3], "note": "Zoë"})
    );
    let reply = gw.get_with_token("/mock/tea", &access.token).await;
    reply.assert_status(418);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json(), json!("short and stout"));

    let health = crate::support::send(gw.admin.addr, "GET", "/healthz", &[], "").await;
    health.assert_status(200);
    assert_eq!(health.json(), json!({"status": "ok"}));
}

/// A front door whose clients have 1 s to send a request head.
async fn impatient_gateway() -> Gateway {
    Gateway::start_with(|config| {
        config.server_limits.header_read_timeout = Duration::from_secs(1);
    })
    .await
}

#[tokio::test]
async fn half_a_request_line_or_nothing_is_cut_off_after_the_header_timeout() {
    let gw = impatient_gateway().await;
    let mut half = connect_and_write(gw.data, b"GET /api/pi").await;
    let mut silent = connect_and_write(gw.data, b"").await;
    let (half, silent) = tokio::join!(
        closed_within(&mut half, Duration::from_secs(3)),
        closed_within(&mut silent, Duration::from_secs(3)),
    );
    for took in [half, silent] {
        assert!(
            took >= Duration::from_millis(900),
            "closed too early: {took:?}"
        );
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_timeout() {
    let gw = impatient_gateway().await;
    let mut stream =
        connect_and_write(gw.data, b"GET /nowhere HTTP/1.1\r\nhost: test\r\n\r\n").await;
    let response = read_response(&mut stream).await;
    assert_eq!(response.status, 401);
    assert_eq!(response.json()["error"], "missing_credentials");
    assert!(
        !response
            .head
            .to_ascii_lowercase()
            .contains("connection: close"),
        "the connection is kept alive: {}",
        response.head
    );
    let took = closed_within(&mut stream, Duration::from_secs(3)).await;
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );
}

/// The connection's one header-read timer fires for an early head and is moved on: requests
/// that keep coming for longer than the timeout are served, and the idle limit still holds.
#[tokio::test]
async fn a_busy_keep_alive_connection_outlives_the_header_timeout_then_idles_out() {
    let gw = impatient_gateway().await;
    let mut stream = connect_and_write(gw.data, b"").await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        tokio::io::AsyncWriteExt::write_all(
            &mut stream,
            b"GET /nowhere HTTP/1.1\r\nhost: test\r\n\r\n",
        )
        .await
        .unwrap();
        let response = read_response(&mut stream).await;
        assert_eq!(response.status, 401, "after {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let took = closed_within(&mut stream, Duration::from_secs(3)).await;
    assert!(
        took >= Duration::from_millis(500),
        "closed too early: {took:?}"
    );
}

#[tokio::test]
async fn metrics_count_refusals_by_code_but_not_garbage_as_cache_misses() {
    let door = Door::start().await;
    let (gw, admin) = (&door.gateway, door.gateway.admin);
    let misses = || admin.metric("tokengate_token_cache_misses_total");
    let misses0 = misses().await;
    // Garbage and a well-formed JWT naming no profile: refused, and no cache miss counted.
    door.refused(
        "/api/ping",
        &[("authorization", "Bearer not.a.jwt")],
        401,
        "invalid_token",
    )
    .await;
    let stranger = hs256(SECRET, json!({"sub": "no-such-token", "iat": now_s()}));
    let (name, value) = bearer(&stranger);
    door.refused("/api/ping", &[(name, &value)], 401, "invalid_token")
        .await;
    assert_eq!(misses().await, misses0, "garbage is not a cache miss");
    // A real token's first use is.
    gw.get_with_jwt("/api/ping", &door.jwt())
        .await
        .assert_status(200);
    assert_eq!(misses().await, misses0 + 1);

    let auth = format!("Bearer {}", crate::support::ADMIN_KEY);
    let text = crate::support::send(
        admin.addr,
        "GET",
        "/metrics",
        &[("authorization", &auth)],
        "",
    )
    .await
    .text();
    assert!(
        text.contains("tokengate_requests_total{outcome=\"invalid_token\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE tokengate_open_connections gauge\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE tokengate_upstream_seconds histogram\n"),
        "{text}"
    );
    assert!(text.contains("tokengate_build_info{version=\""), "{text}");
    let rss: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .expect("process_resident_memory_bytes")
        .parse()
        .unwrap();
    assert!(rss > 1_000_000, "{rss}");
    assert!(!text.contains(&door.token.token), "no token in metrics");
}
