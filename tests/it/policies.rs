//! Access policies (SPEC §1 `policy`, issue 14): the quota (exact on one node, its window's
//! end, the usage call, counts that survive kill -9, across three nodes on PostgreSQL under
//! parallel load), the cluster-scoped rate limit with two and three nodes, the fields of every
//! 429, and JWTs of up to 15 KiB.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokengate::tools::jwt_sign::SigningKey;
use tokengate::tools::signing::RsaSigningKey;

use crate::support::fixtures::{hs256, now_s};
use crate::support::gateway::{bearer, ping, AdminClient, Gateway};
use crate::support::pg::fresh_database;
use crate::support::process::Served;
use crate::support::{send, Reply, TempDir};

const DAY_MS: u64 = 86_400_000;
const SECRETS_KEY: &str = "q1XbgTQqV3GS6OnRzbrUvH2e9LxEHg6G5iRH1YdKW8I=";

/// A collection `api` with `GET /api/ping`, and a client "Acme" with one token profile of
/// `policy`; returns the profile's id and token.
async fn profile_with(admin: &AdminClient, policy: Value) -> (String, String) {
    let collection = admin.collection("api", json!([ping("/ping")])).await;
    let access = admin
        .access(
            "Acme",
            json!({"collections": [collection], "auth": {"type": "token"}, "policy": policy}),
        )
        .await;
    (access.profile_id, access.token)
}

/// Another token profile of `policy` on the `api` collection that [`profile_with`] made.
async fn another_profile(admin: &AdminClient, policy: Value) -> (String, String) {
    let collections = admin.expect(200, "GET", "/v1/collections", None).await;
    let api = collections["items"][0]["id"].clone();
    let client = admin.client("Other").await;
    let access = admin
        .profile(
            &client,
            json!({"collections": [api], "auth": {"type": "token"}, "policy": policy}),
        )
        .await;
    (access.profile_id, access.token)
}

/// Asserts a 429 with `code`, `Retry-After` in `retry_range`, and the ratelimit-headers
/// draft's fields for policy `name` with quota `q` per `w` seconds.
fn assert_limited(
    reply: &Reply,
    code: &str,
    name: &str,
    q: u64,
    w: u64,
    retry_range: std::ops::RangeInclusive<u64>,
) -> u64 {
    reply.assert_error(429, code);
    let retry_after: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!(
        retry_range.contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_eq!(
        reply.header("ratelimit-policy"),
        Some(format!("\"{name}\";q={q};w={w}").as_str())
    );
    assert_eq!(
        reply.header("ratelimit"),
        Some(format!("\"{name}\";r=0;t={retry_after}").as_str())
    );
    retry_after
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn a_quota_admits_exactly_n_then_429_until_its_window_ends() {
    // The data plane's clock runs ahead so that today's window ends 3 s from now.
    let now = now_ms();
    let mut skew = (now / DAY_MS + 1) * DAY_MS - now - 3_000;
    if skew > DAY_MS - 10_000 {
        skew = 0; // too close to midnight already: the real end is seconds away
    }
    let gateway = Gateway::start_with(|c| c.clock_skew = Duration::from_millis(skew)).await;
    let (id, token) = profile_with(
        &gateway.admin,
        json!({"quota": {"requests": 5, "per_days": 1}}),
    )
    .await;
    for _ in 0..5 {
        gateway
            .get_with_token("/api/ping", &token)
            .await
            .assert_status(200);
    }
    let refused = gateway.get_with_token("/api/ping", &token).await;
    // Up to 10 s when the test ran within 10 s of midnight UTC and took the real end.
    let retry_after = assert_limited(&refused, "quota_exceeded", "quota", 5, 86_400, 1..=10);
    let usage = gateway
        .admin
        .expect(200, "GET", &format!("/v1/profiles/{id}/usage"), None)
        .await;
    assert_eq!(usage["quota"]["limit"], 5);
    assert_eq!(usage["quota"]["used"], 5);
    let ends = usage["quota"]["window_ends_at"].as_str().unwrap();
    assert!(ends.ends_with("T00:00:00Z"), "{ends}");
    // Still refused until the window ends, then admitted again.
    gateway
        .get_with_token("/api/ping", &token)
        .await
        .assert_error(429, "quota_exceeded");
    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(300)).await;
    gateway
        .get_with_token("/api/ping", &token)
        .await
        .assert_status(200);
    // A profile without a quota has none.
    let (plain, _) = another_profile(&gateway.admin, json!(null)).await;
    let usage = gateway
        .admin
        .expect(200, "GET", &format!("/v1/profiles/{plain}/usage"), None)
        .await;
    assert_eq!(usage, json!({"quota": null}));
    gateway
        .admin
        .expect(404, "GET", "/v1/profiles/nope/usage", None)
        .await;
}

#[tokio::test]
async fn a_quota_taken_away_and_given_back_keeps_its_count() {
    let gateway = Gateway::start().await;
    let quota = json!({"quota": {"requests": 10, "per_days": 1}});
    let (id, token) = profile_with(&gateway.admin, quota.clone()).await;
    for _ in 0..6 {
        gateway
            .get_with_token("/api/ping", &token)
            .await
            .assert_status(200);
    }
    // Written to the store, then the profile's counter is rebuilt twice.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    gateway
        .admin
        .patch_profile(&id, json!({"policy": null}))
        .await;
    gateway
        .admin
        .patch_profile(&id, json!({"policy": quota}))
        .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut admitted = 0;
    for _ in 0..6 {
        if gateway.get_with_token("/api/ping", &token).await.status == 200 {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 4, "6 of 10 were used before");
}

#[tokio::test]
async fn every_429_carries_the_ratelimit_fields() {
    let gateway = Gateway::start().await;
    let (_, token) = profile_with(
        &gateway.admin,
        json!({"rate_limit": {"requests": 2, "per_s": 60}}),
    )
    .await;
    for _ in 0..2 {
        gateway
            .get_with_token("/api/ping", &token)
            .await
            .assert_status(200);
    }
    let refused = gateway.get_with_token("/api/ping", &token).await;
    assert_limited(&refused, "rate_limited", "rate", 2, 60, 1..=30);
}

#[tokio::test]
async fn quota_counts_survive_kill_9() {
    let dir = TempDir::new();
    let mut first = Served::spawn(dir.path(), &[]).await;
    let (id, token) = profile_with(
        &first.admin,
        json!({"quota": {"requests": 20, "per_days": 30}}),
    )
    .await;
    for _ in 0..12 {
        send(first.data, "GET", "/api/ping", &[("api-token", &token)], "")
            .await
            .assert_status(200);
    }
    // The counts reach the store within a second; then the process dies without a word.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    first.kill();
    let second = Served::spawn(dir.path(), &[]).await;
    let usage = second
        .admin
        .expect(200, "GET", &format!("/v1/profiles/{id}/usage"), None)
        .await;
    assert_eq!(usage["quota"]["used"], 12, "{usage}");
    let mut admitted = 0;
    for _ in 0..10 {
        let reply = send(
            second.data,
            "GET",
            "/api/ping",
            &[("api-token", &token)],
            "",
        )
        .await;
        if reply.status == 200 {
            admitted += 1;
        } else {
            reply.assert_error(429, "quota_exceeded");
        }
    }
    assert_eq!(admitted, 8, "20 in all, 12 before the crash");
}

/// A node on the PostgreSQL database `url`, in-process.
async fn pg_node(url: &str) -> Gateway {
    let url = url.to_owned();
    Gateway::start_with(move |c| {
        c.store = Some(url);
        c.secrets_key = Some(SECRETS_KEY.to_owned());
    })
    .await
}

/// Sends `GET /api/ping` with `token` to `gateway` on `connections` keep-alive connections,
/// each pausing `pace` after an admitted request, until every one has seen a 429; returns how
/// many got 200.
async fn drain(gateway: &Gateway, token: &str, connections: usize, pace: Duration) -> u64 {
    let admitted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (addr, token, admitted) = (gateway.data, token.to_owned(), admitted.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = crate::support::KeepAlive::connect(addr).await;
            loop {
                let status = client.get("/api/ping", &[("api-token", &token)]).await;
                match status {
                    200 => {
                        admitted.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(pace).await;
                    }
                    429 => break,
                    other => panic!("unexpected {other}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    admitted.load(Ordering::Relaxed)
}

#[tokio::test]
async fn a_quota_holds_across_three_nodes_under_parallel_load() {
    let Some(url) = fresh_database("quota_three_nodes").await else {
        return;
    };
    let nodes = [
        pg_node(&url).await,
        pg_node(&url).await,
        pg_node(&url).await,
    ];
    const N: u64 = 10_000;
    let (id, token) = profile_with(
        &nodes[0].admin,
        json!({"quota": {"requests": N, "per_days": 1}}),
    )
    .await;
    // Every node knows the profile.
    for node in &nodes {
        let started = Instant::now();
        while node.door().registry.snapshot().profile(&id).is_none() {
            assert!(started.elapsed() < Duration::from_secs(5));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let started = Instant::now();
    // Paced (about 3 000 requests/s in all) so that the run spans several syncs.
    let pace = Duration::from_millis(4);
    let (a, b, c) = tokio::join!(
        drain(&nodes[0], &token, 4, pace),
        drain(&nodes[1], &token, 4, pace),
        drain(&nodes[2], &token, 4, pace)
    );
    let elapsed = started.elapsed().as_secs_f64();
    let total = a + b + c;
    let rate = total as f64 / elapsed;
    // The README's bound: each other node may admit what it serves in two sync intervals
    // (its count is at most a second old when sent, and read at most a second later), plus
    // 10 % for the store's round trips and the rate's ups and downs.
    let bound = (1.1 * 2.0 * rate * 2.0 / 3.0).ceil() as u64;
    println!(
        "quota {N} across 3 nodes: admitted {total} ({a} + {b} + {c}) in {elapsed:.2} s, \
         {rate:.0} req/s; overshoot {} (bound {bound})",
        total.saturating_sub(N)
    );
    assert!(total >= N, "admitted {total} of {N}");
    assert!(total - N <= bound, "overshoot {} over {bound}", total - N);
    // Every node now refuses, and a node that starts later reads the whole count.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for node in &nodes {
        node.get_with_token("/api/ping", &token)
            .await
            .assert_error(429, "quota_exceeded");
    }
    let late = pg_node(&url).await;
    let usage = late
        .admin
        .expect(200, "GET", &format!("/v1/profiles/{id}/usage"), None)
        .await;
    assert_eq!(usage["quota"]["used"], total, "{usage}");
    late.get_with_token("/api/ping", &token)
        .await
        .assert_error(429, "quota_exceeded");
}

/// Waits until `gateway` counts `live` live nodes.
async fn wait_live(gateway: &Gateway, live: u32) {
    let started = Instant::now();
    while gateway.door().gate.live_nodes() != live {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still {} live nodes, wanted {live}",
            gateway.door().gate.live_nodes()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many of `tries` requests with `token` `gateway` admits.
async fn admitted(gateway: &Gateway, token: &str, tries: usize) -> usize {
    let mut ok = 0;
    for _ in 0..tries {
        let reply = gateway.get_with_token("/api/ping", token).await;
        if reply.status == 200 {
            ok += 1;
        } else {
            reply.assert_error(429, "rate_limited");
        }
    }
    ok
}

#[tokio::test]
async fn a_cluster_rate_limit_is_shared_by_the_live_nodes() {
    let Some(url) = fresh_database("cluster_rate_limit").await else {
        return;
    };
    let a = pg_node(&url).await;
    let b = pg_node(&url).await;
    let policy = json!({"rate_limit": {"requests": 6, "per_s": 3600, "scope": "cluster"}});
    let (id, token) = profile_with(&a.admin, policy.clone()).await;
    wait_live(&a, 2).await;
    wait_live(&b, 2).await;
    let started = Instant::now();
    while b.door().registry.snapshot().profile(&id).is_none() {
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(admitted(&a, &token, 5).await, 3, "two nodes: 6 / 2 each");
    assert_eq!(admitted(&b, &token, 5).await, 3);
    // A third node joins: a share of 2 each.
    let c = pg_node(&url).await;
    for node in [&a, &b, &c] {
        wait_live(node, 3).await;
    }
    let (_, fresh) = another_profile(&a.admin, policy.clone()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for node in [&a, &b, &c] {
        assert_eq!(
            admitted(node, &fresh, 4).await,
            2,
            "three nodes: 6 / 3 each"
        );
    }
    // It leaves (deregistering): back to 3 each.
    c.stop().await;
    wait_live(&a, 2).await;
    let (_, after) = another_profile(&a.admin, policy).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(admitted(&a, &after, 5).await, 3);
}

/// A JWT whose payload is `payload_len` bytes: `sub`, `name`, `exp` and padding in `blob`.
fn big_claims(sub: &str, payload_len: usize) -> serde_json::Map<String, Value> {
    let mut claims = json!({"sub": sub, "name": "Ann", "exp": now_s() + 600, "blob": ""});
    let base = claims.to_string().len();
    claims["blob"] = json!("x".repeat(payload_len - base));
    assert_eq!(claims.to_string().len(), payload_len);
    claims.as_object().unwrap().clone()
}

#[tokio::test]
async fn a_jwt_with_a_10_240_byte_payload_is_accepted_and_one_over_15_kib_is_not() {
    let gateway = Gateway::start().await;
    let secret = "a-shared-secret-of-at-least-32-bytes-0123";
    let collection = gateway
        .admin
        .collection("api", json!([ping("/ping")]))
        .await;
    let hs = gateway
        .admin
        .access(
            "HS",
            json!({"collections": [collection], "auth": {"type": "jwt", "alg": "HS256", "secret": secret}}),
        )
        .await;
    let public = crate::support::fixtures::read_data("jwt-interop/rsa2048.spki.pem");
    let rs = gateway
        .admin
        .access(
            "RS",
            json!({"collections": [collection], "auth": {"type": "jwt", "alg": "RS256", "public_key": public}}),
        )
        .await;
    let private = RsaSigningKey::parse(&crate::support::fixtures::read_data(
        "jwt-interop/rsa2048.key",
    ))
    .unwrap();
    let rs_key = SigningKey::Rs256(private);

    let hs_jwt = hs256(secret, Value::Object(big_claims(&hs.token, 10_240)));
    let rs_jwt = rs_key.sign(&big_claims(&rs.token, 10_240)).unwrap();
    for jwt in [&hs_jwt, &rs_jwt] {
        assert!(
            jwt.len() > 13_000 && jwt.len() <= 15 * 1024,
            "{}",
            jwt.len()
        );
        gateway
            .get_with_jwt("/api/ping", jwt)
            .await
            .assert_status(200);
    }
    // Over 15 KiB: refused before any signature work.
    let huge = hs256(secret, Value::Object(big_claims(&hs.token, 11_600)));
    assert!(huge.len() > 15 * 1024);
    let (name, value) = bearer(&huge);
    gateway
        .call("GET", "/api/ping", &[(name, &value)])
        .await
        .assert_error(401, "invalid_token");
}
