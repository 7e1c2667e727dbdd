//! Forward-auth through the real proxies (issue 12): Debian's nginx and Caddy, each running the
//! config the project ships (`examples/nginx/tokengate.conf`, `examples/caddy/Caddyfile`) in
//! front of a test API, asking a real tokengate. The same cases for both: a grant reaches the API
//! with tokengate's identity headers (and none a client forged), every refusal comes back with
//! the data plane's status, error code and headers, traversal attempts are refused,
//! `ip_allow` sees the client behind the proxy, and nothing passes once tokengate is gone.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::{json, Value};
use tokengate::core::cidr::Cidr;

use crate::forward_auth::setup;
use crate::support::fixtures::{hs256, now_s};
use crate::support::gateway::Gateway;
use crate::support::proxy::Proxy;
use crate::support::upstream::Upstream;
use crate::support::{send_from, Reply};

/// The address the test's client connects from; the proxies connect to tokengate from
/// 127.0.0.1, so tokengate tells the two apart only through `X-Forwarded-For`.
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// Another client, outside the pinned profile's `ip_allow`.
const STRANGER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
/// The HS256 secret of the JWT profile.
const SECRET: &str = "proxies-test-secret-0123456789abcdef";

/// What a test needs: tokengate (trusting the proxy on 127.0.0.1), the API, and the tokens.
struct Scene {
    gateway: Gateway,
    api: Upstream,
    token: String,
    limited: String,
    pinned: String,
    jwt: String,
}

async fn scene() -> Scene {
    let gateway = Gateway::start_with(|c| {
        c.trusted_proxies = vec![Cidr::parse("127.0.0.1/32").unwrap()];
    })
    .await;
    let (token, limited, pinned) = setup(&gateway, "127.0.0.2/32").await;
    let collections = gateway
        .admin
        .expect(200, "GET", "/v1/collections", None)
        .await;
    let shop = collections["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "shop")
        .unwrap()["id"]
        .clone();
    let signer = gateway
        .admin
        .access(
            "Signer",
            json!({"collections": [shop], "auth": {"type": "jwt", "alg": "HS256", "secret": SECRET}}),
        )
        .await;
    let jwt = hs256(
        SECRET,
        json!({"sub": signer.token, "name": "Ann", "exp": now_s() + 600}),
    );
    Scene {
        gateway,
        api: Upstream::echo().await,
        token,
        limited,
        pinned,
        jwt,
    }
}

/// The request headers the test API received (its echo), lowercase name → values.
fn received(reply: &Reply) -> serde_json::Map<String, Value> {
    assert_eq!(reply.header("x-upstream"), Some("echo"), "{}", reply.text());
    reply.json()["headers"].as_object().unwrap().clone()
}

/// Asserts that the API got exactly `identity` as tokengate's identity headers (each once), no
/// other header that reads like one (also with `_` for `-`), and no credential.
fn assert_identity(reply: &Reply, identity: &[(&str, &str)]) {
    let headers = received(reply);
    for (name, value) in identity {
        assert_eq!(
            headers.get(*name),
            Some(&json!([value])),
            "{name}: {headers:?}"
        );
    }
    for name in headers.keys() {
        let reads_as = name.to_ascii_lowercase().replace('_', "-");
        if reads_as.starts_with("x-tokengate-") {
            assert!(
                identity.iter().any(|(expected, _)| expected == name),
                "the API got {name}: {headers:?}"
            );
        }
    }
    assert!(headers.get("api-token").is_none(), "{headers:?}");
    assert!(headers.get("authorization").is_none(), "{headers:?}");
}

/// Asserts a refusal that never reached the API: `status`, the JSON `error` code, and exactly
/// one `WWW-Authenticate` on a 401 and none otherwise.
fn assert_refused(reply: &Reply, proxy: &Proxy, status: u16, code: &str) {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "{}: {}\n{}",
        proxy.name,
        reply.text(),
        proxy.log()
    );
    assert!(reply.header("x-upstream").is_none(), "reached the API");
    assert_eq!(reply.json()["error"], code, "{}", proxy.name);
    let challenges = reply.headers.get_all("www-authenticate").iter().count();
    assert_eq!(challenges, usize::from(status == 401), "{}", proxy.name);
}

/// The cases of issue 12, through `proxy`.
async fn run_cases(scene: &Scene, proxy: &Proxy) {
    let get = |path: &'static str, headers: Vec<(&'static str, String)>| async move {
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        send_from(CLIENT, proxy.addr, "GET", path, &pairs).await
    };
    let token = |t: &String| vec![("api-token", t.clone())];

    // A grant: the API's answer, with tokengate's identity headers in place of forged ones.
    let mut forged = token(&scene.token);
    for name in [
        "x-tokengate-client-name",
        "X-Tokengate-Caller-Name",
        "x_tokengate_client_id",
        "X_Tokengate_Profile_Id",
    ] {
        forged.push((name, "Mallory".to_owned()));
    }
    let granted = get("/shop/orders/42?expand=1", forged).await;
    granted.assert_status(200);
    assert_eq!(granted.json()["uri"], "/shop/orders/42?expand=1");
    let headers = received(&granted);
    let client_id = headers["x-tokengate-client-id"][0].as_str().unwrap();
    let profile_id = headers["x-tokengate-profile-id"][0].as_str().unwrap();
    assert_eq!(client_id.len(), 32, "{headers:?}");
    assert_eq!(profile_id.len(), 32, "{headers:?}");
    assert_identity(
        &granted,
        &[
            ("x-tokengate-client-id", client_id),
            ("x-tokengate-client-name", "Acme"),
            ("x-tokengate-profile-id", profile_id),
            ("x-tokengate-profile-name", "main"),
            ("x-tokengate-auth", "token"),
        ],
    );
    // A JWT the client signed: its `name` claim reaches the API as the caller's name.
    let (name, value) = crate::support::gateway::bearer(&scene.jwt);
    let by_jwt = get("/shop/orders/7", vec![(name, value)]).await;
    by_jwt.assert_status(200);
    let headers = received(&by_jwt);
    assert_eq!(headers["x-tokengate-auth"], json!(["jwt"]));
    assert_eq!(headers["x-tokengate-caller-name"], json!(["Ann"]));
    assert_eq!(headers["x-tokengate-client-name"], json!(["Signer"]));

    // Refusals, each with the data plane's status and code.
    let missing = get("/shop/orders/42", vec![]).await;
    assert_refused(&missing, proxy, 401, "missing_credentials");
    assert_eq!(
        missing.header("www-authenticate"),
        Some(r#"Bearer realm="tokengate""#)
    );
    let invalid = get("/shop/orders/42", token(&"0".repeat(64))).await;
    assert_refused(&invalid, proxy, 401, "invalid_token");
    assert_eq!(
        invalid.header("www-authenticate"),
        Some(r#"Bearer realm="tokengate", error="invalid_token""#)
    );
    let not_granted = get("/billing/invoices", token(&scene.token)).await;
    assert_refused(&not_granted, proxy, 403, "forbidden");
    let no_endpoint = get("/shop/nothing", token(&scene.token)).await;
    assert_refused(&no_endpoint, proxy, 404, "not_found");
    get("/shop/orders/1", token(&scene.limited))
        .await
        .assert_status(200);
    let limited = get("/shop/orders/1", token(&scene.limited)).await;
    assert_refused(&limited, proxy, 429, "rate_limited");
    let retry_after: u64 = limited
        .header("retry-after")
        .expect("Retry-After on a 429")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        limited.header("ratelimit-policy"),
        Some("\"rate\";q=1;w=60")
    );
    assert_eq!(
        limited.header("ratelimit"),
        Some(format!("\"rate\";r=0;t={retry_after}").as_str())
    );

    // Traversal: the raw URI names billing (or hides a slash); refused even where the
    // normalized path would be granted.
    let dotted = get("/billing/../shop/orders/1", token(&scene.token)).await;
    assert_refused(&dotted, proxy, 403, "forbidden");
    let encoded_dots = get("/billing/%2e%2e/shop/orders/1", token(&scene.token)).await;
    assert_refused(&encoded_dots, proxy, 403, "forbidden");
    let slash = get("/shop/orders/1%2F..%2F..%2Fbilling", token(&scene.token)).await;
    assert_refused(&slash, proxy, 400, "invalid_request");

    // ip_allow sees the client's address, not the proxy's (127.0.0.1), and not a forged one.
    let pinned: Vec<(&str, &str)> = vec![("api-token", scene.pinned.as_str())];
    send_from(CLIENT, proxy.addr, "GET", "/shop/orders/1", &pinned)
        .await
        .assert_status(200);
    let stranger = send_from(STRANGER, proxy.addr, "GET", "/shop/orders/1", &pinned).await;
    assert_refused(&stranger, proxy, 403, "forbidden");
    let spoofing = [
        ("api-token", scene.pinned.as_str()),
        ("x-forwarded-for", "127.0.0.2"),
    ];
    let spoofed = send_from(STRANGER, proxy.addr, "GET", "/shop/orders/1", &spoofing).await;
    assert_refused(&spoofed, proxy, 403, "forbidden");
}

/// With tokengate gone, the proxy refuses with a 5xx of its own (`expected`) and the API is not
/// reached: fail closed.
async fn assert_fails_closed(scene: Scene, proxy: &Proxy, expected: u16) {
    let Scene { gateway, token, .. } = scene;
    gateway.stop().await;
    let reply = send_from(
        CLIENT,
        proxy.addr,
        "GET",
        "/shop/orders/1",
        &[("api-token", &token)],
    )
    .await;
    assert_eq!(
        reply.status.as_u16(),
        expected,
        "{}: {}",
        proxy.name,
        reply.text()
    );
    assert!(reply.header("x-upstream").is_none(), "reached the API");
}

#[tokio::test]
async fn nginx_auth_request_with_the_shipped_config() {
    let scene = scene().await;
    let test = "nginx_auth_request_with_the_shipped_config";
    let Some(nginx) = Proxy::nginx(test, scene.gateway.data, scene.api.addr).await else {
        return;
    };
    run_cases(&scene, &nginx).await;
    assert_fails_closed(scene, &nginx, 500).await;
}

#[tokio::test]
async fn caddy_forward_auth_with_the_shipped_config() {
    let scene = scene().await;
    let test = "caddy_forward_auth_with_the_shipped_config";
    let Some(caddy) = Proxy::caddy(test, scene.gateway.data, scene.api.addr).await else {
        return;
    };
    run_cases(&scene, &caddy).await;
    assert_fails_closed(scene, &caddy, 502).await;
}
