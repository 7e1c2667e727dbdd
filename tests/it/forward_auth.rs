//! Forward-auth (SPEC §3 "Forward-auth mode"), asked exactly the way each proxy asks: Traefik
//! and Caddy (`X-Forwarded-Method`/`-Uri` to `/_tokengate/verify`), nginx `auth_request`
//! (`X-Original-URI` to `/_tokengate/auth-request`), Envoy `ext_authz` (its method, the path
//! after `/_tokengate/verify`). The real nginx and Caddy run the shipped configs in
//! [`crate::proxies`].

use serde_json::json;

use crate::support::gateway::{ping, Gateway};
use crate::support::Reply;

/// A shop the client "Acme" may call, a billing collection it may not; a token profile, a
/// rate-limited one (1 request a minute) and one whose `ip_allow` is `pinned_to` (a CIDR).
/// Returns the three tokens.
pub(crate) async fn setup(gateway: &Gateway, pinned_to: &str) -> (String, String, String) {
    let admin = &gateway.admin;
    let shop = admin
        .collection(
            "shop",
            json!([ping("/orders/:id"), {"name": "create", "method": "POST", "path": "/orders",
                    "response": {"status": 201, "body": {}}}]),
        )
        .await;
    admin
        .collection("billing", json!([ping("/invoices")]))
        .await;
    let client = admin.client("Acme").await;
    let token = admin
        .profile(
            &client,
            json!({"collections": [shop], "auth": {"type": "token"}}),
        )
        .await
        .token;
    let limited = admin
        .profile(
            &client,
            json!({"name": "limited", "collections": [shop], "auth": {"type": "token"},
                   "policy": {"rate_limit": {"requests": 1, "per_s": 60}}}),
        )
        .await
        .token;
    let pinned = admin
        .profile(
            &client,
            json!({"name": "pinned", "collections": [shop], "auth": {"type": "token"},
                   "ip_allow": [pinned_to]}),
        )
        .await
        .token;
    (token, limited, pinned)
}

fn assert_identity(reply: &Reply) {
    reply.assert_status(200);
    assert!(reply.body.is_empty(), "no body on a grant");
    assert_eq!(reply.header("x-tokengate-auth"), Some("token"));
    assert_eq!(reply.header("x-tokengate-client-name"), Some("Acme"));
    assert!(reply.header("x-tokengate-profile-id").is_some());
    // The grant is written into the request's own header map (emptied): none of the request's
    // fields, the credential included, may come back.
    for name in reply.headers.keys() {
        let name = name.as_str();
        assert!(
            name.starts_with("x-tokengate-") || name == "content-length" || name == "date",
            "the grant carries {name}"
        );
    }
}

#[tokio::test]
async fn traefik_caddy_and_envoy_get_the_data_planes_answers() {
    let gateway = Gateway::start().await;
    let (token, limited, _) = setup(&gateway, "10.1.2.3/32").await;
    let verify = |method: &'static str, uri: &'static str, extra: Vec<(&'static str, String)>| {
        let gateway = &gateway;
        async move {
            let mut headers: Vec<(&str, String)> = vec![
                ("x-forwarded-method", method.to_owned()),
                ("x-forwarded-uri", uri.to_owned()),
                ("x-forwarded-proto", "https".to_owned()),
                ("x-forwarded-host", "api.example.com".to_owned()),
            ];
            headers.extend(extra);
            let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            gateway.call("GET", "/_tokengate/verify", &pairs).await
        }
    };
    let with = |t: &str| vec![("api-token", t.to_owned())];
    assert_identity(&verify("GET", "/shop/orders/42?expand=1", with(&token)).await);
    assert_identity(&verify("POST", "/shop/orders", with(&token)).await);
    verify("GET", "/shop/orders/42", vec![])
        .await
        .assert_error(401, "missing_credentials");
    verify("GET", "/shop/orders/42", with(&"0".repeat(64)))
        .await
        .assert_error(401, "invalid_token");
    verify("GET", "/billing/invoices", with(&token))
        .await
        .assert_error(403, "forbidden");
    verify("GET", "/shop/nothing", with(&token))
        .await
        .assert_error(404, "not_found");
    verify("GET", "/shop/orders/1", with(&limited))
        .await
        .assert_status(200);
    let limited_reply = verify("GET", "/shop/orders/1", with(&limited)).await;
    limited_reply.assert_error(429, "rate_limited");
    assert!(limited_reply.header("retry-after").is_some());

    // Envoy ext_authz: the client's method, the original path after the prefix.
    let envoy = gateway
        .call(
            "POST",
            "/_tokengate/verify/shop/orders",
            &[("api-token", &token)],
        )
        .await;
    assert_identity(&envoy);
    gateway
        .call(
            "DELETE",
            "/_tokengate/verify/shop/orders",
            &[("api-token", &token)],
        )
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn nginx_auth_request_gets_only_200_401_403_with_the_real_status_in_headers() {
    let gateway = Gateway::start().await;
    let (token, limited, _) = setup(&gateway, "10.1.2.3/32").await;
    let ask = |uri: &'static str, token: Option<String>| {
        let gateway = &gateway;
        async move {
            let mut headers = vec![
                ("x-original-method", "GET".to_owned()),
                ("x-original-uri", uri.to_owned()),
            ];
            if let Some(token) = token {
                headers.push(("api-token", token));
            }
            let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            gateway
                .call("GET", "/_tokengate/auth-request", &pairs)
                .await
        }
    };
    assert_identity(&ask("/shop/orders/7", Some(token.clone())).await);
    for (uri, token, status, code, table_status) in [
        ("/shop/orders/7", None, 401, "missing_credentials", "401"),
        (
            "/billing/invoices",
            Some(token.clone()),
            403,
            "forbidden",
            "403",
        ),
        (
            "/shop/nothing",
            Some(token.clone()),
            403,
            "not_found",
            "404",
        ),
    ] {
        let reply = ask(uri, token).await;
        reply.assert_status(status);
        assert_eq!(reply.header("x-tokengate-error"), Some(code), "{uri}");
        assert_eq!(
            reply.header("x-tokengate-status"),
            Some(table_status),
            "{uri}"
        );
        assert_eq!(reply.json()["error"], code);
    }
    ask("/shop/orders/1", Some(limited.clone()))
        .await
        .assert_status(200);
    let limited_reply = ask("/shop/orders/1", Some(limited)).await;
    limited_reply.assert_status(403);
    assert_eq!(limited_reply.header("x-tokengate-status"), Some("429"));
    assert_eq!(
        limited_reply.header("x-tokengate-error"),
        Some("rate_limited")
    );
    assert!(limited_reply.header("retry-after").is_some());
}

/// Request headers as (name, value) pairs.
type Headers<'a> = Vec<(&'a str, &'a str)>;

#[tokio::test]
async fn a_misconfigured_proxy_never_grants_access() {
    let gateway = Gateway::start().await;
    let (token, _, _) = setup(&gateway, "10.1.2.3/32").await;
    let cases: Vec<(&str, Headers, &str)> = vec![
        ("/_tokengate/verify", vec![], "no X-Forwarded-Uri"),
        ("/_tokengate/auth-request", vec![], "no X-Forwarded-Uri"),
        (
            "/_tokengate/verify",
            vec![
                ("x-forwarded-uri", "/shop/orders/1"),
                ("x-original-uri", "/billing/invoices"),
            ],
            "two different",
        ),
        (
            "/_tokengate/verify",
            vec![("x-forwarded-uri", "/shop/../billing/invoices")],
            ". or ..",
        ),
        (
            "/_tokengate/auth-request",
            vec![("x-original-uri", "/shop/%2e%2e/billing/invoices")],
            ". or ..",
        ),
        (
            "/_tokengate/verify",
            vec![
                ("x-forwarded-uri", "/shop/orders/1"),
                ("x-forwarded-method", "G E T"),
            ],
            "not valid",
        ),
    ];
    for (path, mut headers, reason) in cases {
        headers.push(("api-token", &token));
        let reply = gateway.call("GET", path, &headers).await;
        reply.assert_error(403, "forbidden");
        let message = reply.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains(reason), "{path} {headers:?}: {message}");
    }
}

#[tokio::test]
async fn ip_allow_sees_the_client_behind_a_trusted_proxy() {
    let gateway = Gateway::start_with(|c| {
        c.trusted_proxies = vec![tokengate::core::cidr::Cidr::parse("127.0.0.1/32").unwrap()];
    })
    .await;
    let (_, _, pinned) = setup(&gateway, "10.1.2.3/32").await;
    let ask = |client: &'static str| {
        let (gateway, pinned) = (&gateway, pinned.clone());
        async move {
            gateway
                .call(
                    "GET",
                    "/_tokengate/auth-request",
                    &[
                        ("x-original-uri", "/shop/orders/1"),
                        ("x-forwarded-for", client),
                        ("api-token", &pinned),
                    ],
                )
                .await
        }
    };
    assert_identity(&ask("10.1.2.3").await);
    let refused = ask("10.9.9.9").await;
    refused.assert_status(403);
    assert_eq!(refused.header("x-tokengate-status"), Some("403"));
}
