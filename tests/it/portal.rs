//! The client portal over HTTP (SPEC §3 "Client portal"): the page and its OpenAPI document list
//! exactly what the client's active profiles grant; security headers; one 404 for unknown,
//! rotated and disabled keys; key rotation; `--public-url`; no key in the access log. The same
//! page in a real browser is `portal_browser`.

use serde_json::{json, Value};

use crate::support::gateway::{forward, ping, Gateway};
use crate::support::upstream::Upstream;
use crate::support::Reply;

/// The headers SPEC §3 puts on every portal response.
pub fn assert_portal_headers(reply: &Reply) {
    let csp = reply.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
}

/// A shop the client may call, a billing collection it may not, and an internal one granted
/// only through a disabled profile. Returns the gateway, the client id and its portal key.
pub async fn shop(gateway: &Gateway, upstream: &str) -> (String, String) {
    let admin = &gateway.admin;
    let shop = admin
        .collection(
            "shop",
            json!([
                forward("GET", "/orders/:id", upstream),
                forward("POST", "/orders", upstream),
                {"name": "retired", "method": "GET", "path": "/old", "active": false,
                 "response": {"status": 200, "body": {}}},
            ]),
        )
        .await;
    let billing = admin
        .collection("billing", json!([ping("/invoices")]))
        .await;
    let internal = admin
        .collection("internal", json!([ping("/secrets")]))
        .await;
    let created = admin
        .expect(
            201,
            "POST",
            "/v1/clients",
            Some(json!({"name": "Acme <Corp>"})),
        )
        .await;
    let client_id = created["id"].as_str().unwrap().to_owned();
    let key = created["portal_key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 64, "a portal key carries 256 random bits");
    assert!(created["portal_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/_tokengate/portal/{key}")));
    admin
        .profile(
            &client_id,
            json!({"collections": [shop], "auth": {"type": "token"}}),
        )
        .await;
    let off = admin
        .profile(
            &client_id,
            json!({"name": "off", "collections": [internal], "auth": {"type": "token"}}),
        )
        .await;
    admin
        .patch_profile(&off.profile_id, json!({"active": false}))
        .await;
    // Another client holds billing.
    admin
        .access(
            "Other",
            json!({"collections": [billing], "auth": {"type": "token"}}),
        )
        .await;
    (client_id, key)
}

#[tokio::test]
async fn page_lists_exactly_the_granted_endpoints_with_security_headers() {
    let upstream = Upstream::echo().await;
    let gateway = Gateway::start().await;
    let (_, key) = shop(&gateway, &format!("http://{}", upstream.addr)).await;
    let page = gateway
        .call("GET", &format!("/_tokengate/portal/{key}"), &[])
        .await;
    page.assert_status(200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_portal_headers(&page);
    let html = page.text();
    assert!(html.contains("data-path=\"/shop/orders/:id\""), "{html}");
    assert!(html.contains("data-path=\"/shop/orders\""));
    assert!(
        !html.contains("/shop/old"),
        "inactive endpoints are not listed"
    );
    assert!(!html.contains("/billing"), "another client's collection");
    assert!(
        !html.contains("/internal"),
        "granted only by a disabled profile"
    );
    assert!(html.contains("Acme &lt;Corp&gt;"), "names are escaped");
    assert!(!html.contains("<script>"), "no inline script");
    // Every asset the page names is served, with the same headers.
    for (asset, kind) in [
        ("portal.js", "text/javascript"),
        ("portal.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let path = format!("/_tokengate/portal/assets/{asset}");
        assert!(html.contains(&path), "the page names {path}");
        let reply = gateway.call("GET", &path, &[]).await;
        reply.assert_status(200);
        assert!(reply.header("content-type").unwrap().starts_with(kind));
        assert_portal_headers(&reply);
    }
    // HEAD works; other methods do not.
    gateway
        .call("HEAD", &format!("/_tokengate/portal/{key}"), &[])
        .await
        .assert_status(200);
    let post = gateway
        .call("POST", &format!("/_tokengate/portal/{key}"), &[])
        .await;
    post.assert_status(405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
}

#[tokio::test]
async fn openapi_document_lists_the_same_endpoints_and_the_public_url() {
    let upstream = Upstream::echo().await;
    let gateway = Gateway::start_with(|c| {
        c.public_url = Some("https://api.example.test".into());
    })
    .await;
    let (_, key) = shop(&gateway, &format!("http://{}", upstream.addr)).await;
    let reply = gateway
        .call(
            "GET",
            &format!("/_tokengate/portal/{key}/openapi.json"),
            &[("host", "evil.example")],
        )
        .await;
    reply.assert_status(200);
    assert_portal_headers(&reply);
    let doc = reply.json();
    assert_eq!(doc["openapi"], "3.0.3");
    // .ci/run checks this copy with openapi-spec-validator, a standard OpenAPI validator.
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("portal-openapi.json"), &reply.body).unwrap();
    assert_eq!(
        doc["servers"],
        json!([{"url": "https://api.example.test"}]),
        "servers come from --public-url, never from Host"
    );
    let mut operations: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    operations.sort();
    assert_eq!(operations, ["GET /shop/orders/{id}", "POST /shop/orders"]);
    // Exactly the page's endpoints: the options of its endpoint picker, `:id` read as `{id}`.
    let html = gateway
        .call("GET", &format!("/_tokengate/portal/{key}"), &[])
        .await
        .text();
    let mut offered: Vec<String> = html
        .split("<option value=\"")
        .skip(1)
        .map(|rest| {
            let value = &rest[..rest.find('"').unwrap()];
            let (method, path) = value.split_once(' ').unwrap();
            let path: Vec<String> = path
                .split('/')
                .map(|s| match s.strip_prefix(':') {
                    Some(name) => format!("{{{name}}}"),
                    None => s.to_owned(),
                })
                .collect();
            format!("{method} {}", path.join("/"))
        })
        .collect();
    offered.sort();
    assert_eq!(
        offered, operations,
        "openapi.json lists exactly the page's endpoints"
    );
    let get = &doc["paths"]["/shop/orders/{id}"]["get"];
    assert_eq!(
        get["parameters"],
        json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}])
    );
    for status in ["401", "403", "404", "429"] {
        assert!(get["responses"][status]["$ref"].is_string(), "{status}");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(
        schemes["apiToken"],
        json!({"type": "apiKey", "in": "header", "name": "API-Token",
               "description": "The access profile's auth token."})
    );
    assert_eq!(schemes["bearerJwt"]["scheme"], "bearer");
    assert_eq!(schemes["bearerJwt"]["bearerFormat"], "JWT");
    let unauthorized = &doc["components"]["responses"]["Unauthorized"];
    assert!(unauthorized["headers"]["WWW-Authenticate"].is_object());
    assert_eq!(
        doc["components"]["responses"]["TooManyRequests"]["content"]["application/json"]["schema"]
            ["properties"]["error"]["enum"],
        json!(["rate_limited", "quota_exceeded"])
    );
    // /v1/nodes shows where the data plane listens, not the public URL.
    let nodes = gateway.admin.expect(200, "GET", "/v1/nodes", None).await;
    assert_eq!(nodes["items"][0]["listen"], gateway.data.to_string());
    // The client's portal_url uses the public URL too.
    let clients = gateway.admin.expect(200, "GET", "/v1/clients", None).await;
    let urls: Vec<&str> = clients["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["portal_url"].as_str().unwrap())
        .collect();
    assert!(urls
        .iter()
        .all(|u| u.starts_with("https://api.example.test/_tokengate/portal/")));
}

/// The body and headers of a 404, which must not tell one kind of bad key from another.
fn not_found_shape(reply: &Reply) -> (u16, Value, Option<String>) {
    reply.assert_error(404, "not_found");
    assert_portal_headers(reply);
    (
        reply.status.as_u16(),
        reply.json(),
        reply.header("content-type").map(str::to_owned),
    )
}

#[tokio::test]
async fn unknown_rotated_and_disabled_keys_get_the_same_404() {
    let upstream = Upstream::echo().await;
    let gateway = Gateway::start().await;
    let (client_id, key) = shop(&gateway, &format!("http://{}", upstream.addr)).await;
    let page = |key: String| {
        let gateway = &gateway;
        async move {
            gateway
                .call("GET", &format!("/_tokengate/portal/{key}"), &[])
                .await
        }
    };
    page(key.clone()).await.assert_status(200);
    let unknown = not_found_shape(&page("0".repeat(64)).await);
    let garbage = not_found_shape(&page("x".repeat(300)).await);
    let openapi_unknown = not_found_shape(
        &gateway
            .call(
                "GET",
                &format!("/_tokengate/portal/{}/openapi.json", "0".repeat(64)),
                &[],
            )
            .await,
    );

    // Rotation: a new key and URL; the old one dies at once.
    let rotated = gateway
        .admin
        .expect(
            200,
            "POST",
            &format!("/v1/clients/{client_id}/portal-key"),
            None,
        )
        .await;
    let new_key = rotated["portal_key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    assert_eq!(rotated["propagation"], json!({"applied": 1, "live": 1}));
    assert!(rotated["portal_url"].as_str().unwrap().ends_with(&new_key));
    let old = not_found_shape(&page(key.clone()).await);
    page(new_key.clone()).await.assert_status(200);
    gateway
        .call(
            "GET",
            &format!("/_tokengate/portal/{new_key}/openapi.json"),
            &[],
        )
        .await
        .assert_status(200);

    // A disabled client's page is gone until it is enabled again.
    gateway
        .admin
        .patch_client(&client_id, json!({"active": false}))
        .await;
    let disabled = not_found_shape(&page(new_key.clone()).await);
    assert_eq!(unknown, old);
    assert_eq!(unknown, disabled);
    assert_eq!(unknown, garbage);
    assert_eq!(unknown, openapi_unknown);
    gateway
        .admin
        .patch_client(&client_id, json!({"active": true}))
        .await;
    page(new_key.clone()).await.assert_status(200);

    // A deleted client's page is gone too.
    gateway
        .admin
        .expect(204, "DELETE", &format!("/v1/clients/{client_id}"), None)
        .await;
    assert_eq!(unknown, not_found_shape(&page(new_key).await));
    gateway
        .admin
        .expect(
            404,
            "POST",
            &format!("/v1/clients/{client_id}/portal-key"),
            None,
        )
        .await;
}

#[tokio::test]
async fn grants_follow_profile_changes_and_keys_stay_out_of_the_access_log() {
    let upstream = Upstream::echo().await;
    let dir = std::sync::Arc::new(crate::support::TempDir::new());
    let log_path = dir.path().join("access.log");
    let log_arg = log_path.to_str().unwrap().to_owned();
    let gateway = Gateway::start_in(dir.clone(), move |c| c.access_log = Some(log_arg)).await;
    let (client_id, key) = shop(&gateway, &format!("http://{}", upstream.addr)).await;
    let path = format!("/_tokengate/portal/{key}");
    // A profile granting billing appears on the page; disabling it takes billing away.
    let billing = gateway
        .admin
        .expect(200, "GET", "/v1/collections", None)
        .await["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "billing")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let extra = gateway
        .admin
        .profile(
            &client_id,
            json!({"name": "billing", "collections": [billing], "auth": {"type": "token"}}),
        )
        .await;
    assert!(gateway
        .call("GET", &path, &[])
        .await
        .text()
        .contains("/billing/invoices"));
    gateway
        .admin
        .patch_profile(&extra.profile_id, json!({"active": false}))
        .await;
    assert!(!gateway
        .call("GET", &path, &[])
        .await
        .text()
        .contains("/billing/invoices"));
    // Refused raw paths with the key are logged without it too, and keep the portal's headers.
    for sneaky in [
        format!("{path}/%2F"),
        format!("/_tokengate/portal/./{key}/%2F"),
    ] {
        let refused = gateway.call("GET", &sneaky, &[]).await;
        // Both are under the portal's prefix, so both say no-store.
        refused.assert_portal_error(400, "invalid_request");
        if sneaky.starts_with(&path) {
            assert_portal_headers(&refused);
        }
    }
    gateway
        .call("GET", &format!("{path}/openapi.json"), &[])
        .await
        .assert_status(200);
    gateway.stop().await;
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("/_tokengate/portal/…"), "{log}");
    assert!(
        !log.contains(&key),
        "the access log holds a portal key:\n{log}"
    );
}

#[tokio::test]
async fn demo_prints_a_portal_url_that_opens_the_demo_page() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = crate::support::TempDir::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .args([
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("TOKENGATE_ADMIN_KEY", crate::support::ADMIN_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("demo: the client's portal"))
    })
    .await
    .unwrap();
    let line = line.expect("serve --demo prints the portal URL");
    let url = line.rsplit(' ').next().unwrap();
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    assert!(
        path.starts_with("/_tokengate/portal/") && path.len() == 19 + 64,
        "{url}"
    );
    let page = crate::support::send(authority.parse().unwrap(), "GET", path, &[], "").await;
    let _ = child.kill();
    let _ = child.wait();
    page.assert_status(200);
    assert!(page.text().contains("data-path=\"/demo/orders/:id\""));
    assert!(page.text().contains("Demo client"));
}
