//! The admin API over a real socket: auth, validation, CRUD, tokens shown once, durability.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::support::{mode, open_store, request, store_bytes, AdminServer, TempDir, ADMIN_KEY};
use http::StatusCode;
use serde_json::{json, Value};
use tokengate::core::catalog::ChangeSet;
use tokengate::core::model::State;
use tokengate::core::token::token_digest;
use tokengate::store::{
    load_or_create_secrets_key, Aborted, CommitError, Gap, SqliteStore, Store, StoreError,
};

fn orders_collection(path: &str) -> Value {
    json!({
        "name": "Orders",
        "path": path,
        "endpoints": [
            {"name": "list", "method": "get", "path": "/orders", "response": {"status": 200, "body": {"orders": []}}},
            {"name": "one", "method": "GET", "path": "/orders/:id", "upstream": "http://127.0.0.1:9/backend"}
        ]
    })
}

async fn create_collection(server: &AdminServer, path: &str) -> Value {
    let (status, body) = server
        .call("POST", "/v1/collections", Some(orders_collection(path)))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn create_client(server: &AdminServer, name: &str) -> Value {
    let (status, body) = server
        .call("POST", "/v1/clients", Some(json!({ "name": name })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn create_token_profile(server: &AdminServer, client_id: &str, collections: Value) -> Value {
    let (status, body) = server
        .call(
            "POST",
            &format!("/v1/clients/{client_id}/profiles"),
            Some(json!({"name": "prod", "collections": collections, "auth": {"type": "token"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

fn is_token(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|t| t.len() == 64 && t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

fn assert_error(
    status: StatusCode,
    body: &Value,
    want_status: StatusCode,
    code: &str,
    prefix: &str,
) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], code, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(prefix),
        "expected {prefix:?}, got {message:?}"
    );
}

#[tokio::test]
async fn healthz_is_open_and_everything_else_needs_the_admin_key() {
    let server = AdminServer::start().await;
    let (status, _, body) = request(server.addr, "GET", "/healthz", &[], None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));

    for path in [
        "/v1/collections",
        "/v1/clients",
        "/v1/profiles",
        "/metrics",
        "/nope",
    ] {
        let (status, headers, body) = request(server.addr, "GET", path, &[], None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body["error"], "unauthorized");
        assert_eq!(
            headers["www-authenticate"],
            "Bearer realm=\"tokengate-admin\""
        );
        assert_eq!(headers["content-type"], "application/json");
    }
    for auth in [
        "Bearer wrong-key",
        "Basic dGVzdDp0ZXN0",
        "Bearer",
        &format!("Bearer {ADMIN_KEY}x"),
        ADMIN_KEY,
    ] {
        let (status, headers, body) = request(
            server.addr,
            "GET",
            "/v1/collections",
            &[("authorization", auth)],
            None,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth}");
        assert_eq!(body["error"], "unauthorized");
        assert_eq!(
            headers["www-authenticate"],
            "Bearer realm=\"tokengate-admin\", error=\"invalid_token\""
        );
    }
    // The scheme is case-insensitive.
    let lower = format!("bearer {ADMIN_KEY}");
    let (status, _, _) = request(
        server.addr,
        "GET",
        "/v1/collections",
        &[("authorization", &lower)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // /metrics needs the key too, and then answers Prometheus text.
    let auth = format!("Bearer {ADMIN_KEY}");
    let (status, headers, body) = request(
        server.addr,
        "GET",
        "/metrics",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(body.as_str().unwrap().contains("tokengate_up 1"));
    server.stop().await;
}

#[tokio::test]
async fn unknown_resources_and_methods() {
    let server = AdminServer::start().await;
    let (status, body) = server.call("GET", "/v1/nothing", None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found", "");
    let (status, body) = server.call("GET", "/v1/collections/nope", None).await;
    assert_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "not_found",
        "no such collection",
    );
    let auth = format!("Bearer {ADMIN_KEY}");
    let (status, headers, body) = request(
        server.addr,
        "DELETE",
        "/v1/collections",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "",
    );
    assert_eq!(headers["allow"], "GET, POST");
    server.stop().await;
}

#[tokio::test]
async fn collections_create_list_get_replace_delete() {
    let server = AdminServer::start().await;
    let created = create_collection(&server, "orders").await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert_eq!(created["path"], "orders");
    let endpoints = created["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 2);
    assert_eq!(endpoints[0]["method"], "GET", "methods are upper-cased");
    assert_eq!(endpoints[0]["active"], true);
    let first_endpoint = endpoints[0]["id"].as_str().unwrap().to_owned();
    assert_ne!(first_endpoint, endpoints[1]["id"].as_str().unwrap());

    let (status, list) = server.call("GET", "/v1/collections", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"], json!([created.clone()]));
    let (status, one) = server
        .call("GET", &format!("/v1/collections/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one, created);

    // PUT replaces: a given endpoint id is kept, an endpoint without one gets a fresh id, an
    // endpoint left out is gone. The GET form (with ids) is accepted as is.
    let replacement = json!({
        "id": id,
        "name": "Orders v2",
        "path": "orders-v2",
        "endpoints": [
            {"id": first_endpoint, "name": "list", "method": "GET", "path": "/orders", "response": {"body": [1]}, "active": false},
            {"name": "create", "method": "POST", "path": "/orders", "upstream": "http://127.0.0.1:9"}
        ]
    });
    let (status, replaced) = server
        .call("PUT", &format!("/v1/collections/{id}"), Some(replacement))
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["name"], "Orders v2");
    assert_eq!(replaced["path"], "orders-v2");
    assert_eq!(replaced["endpoints"][0]["id"], first_endpoint.as_str());
    assert_eq!(replaced["endpoints"][0]["active"], false);
    assert_eq!(replaced["endpoints"].as_array().unwrap().len(), 2);
    assert_ne!(replaced["endpoints"][1]["id"], endpoints[1]["id"]);
    // A replace can take access away: it says how far it has propagated (one node here).
    let mut replaced = replaced;
    assert_eq!(
        replaced.as_object_mut().unwrap().remove("propagation"),
        Some(json!({"applied": 1, "live": 1}))
    );
    let (_, one) = server
        .call("GET", &format!("/v1/collections/{id}"), None)
        .await;
    assert_eq!(one, replaced);

    // An endpoint id of another collection is refused.
    let mut bad = one.clone();
    bad["endpoints"][1]["id"] = json!("0123456789abcdef0123456789abcdef");
    let (status, body) = server
        .call("PUT", &format!("/v1/collections/{id}"), Some(bad))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "endpoints[1].id: ",
    );
    // So is a body id that differs from the URL's.
    let mut bad = one.clone();
    bad["id"] = json!("other");
    let (status, body) = server
        .call("PUT", &format!("/v1/collections/{id}"), Some(bad))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "id: ",
    );

    let (status, body) = server
        .call("DELETE", &format!("/v1/collections/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = server
        .call("GET", &format!("/v1/collections/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .call("DELETE", &format!("/v1/collections/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = server.call("GET", "/v1/collections", None).await;
    assert_eq!(list["items"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn duplicates_are_conflicts() {
    let server = AdminServer::start().await;
    create_collection(&server, "orders").await;
    let (status, body) = server
        .call("POST", "/v1/collections", Some(orders_collection("orders")))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict", "path: ");

    let other = create_collection(&server, "billing").await;
    let mut renamed = orders_collection("orders");
    renamed["id"] = other["id"].clone();
    let (status, body) = server
        .call(
            "PUT",
            &format!("/v1/collections/{}", other["id"].as_str().unwrap()),
            Some(renamed),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict", "path: ");

    // The same method and route shape twice in one collection (parameter names don't matter).
    let twice = json!({"name": "x", "path": "twice", "endpoints": [
        {"method": "GET", "path": "/a/:id", "response": {}},
        {"method": "get", "path": "/a/:other", "response": {}}
    ]});
    let (status, body) = server.call("POST", "/v1/collections", Some(twice)).await;
    assert_error(
        status,
        &body,
        StatusCode::CONFLICT,
        "conflict",
        "endpoints[1]: ",
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_collection_input_names_the_field() {
    let server = AdminServer::start().await;
    let cases = [
        (json!({"name": "x", "path": "Orders"}), "path: "),
        (json!({"name": "x", "path": "_tokengate"}), "path: "),
        (json!({"name": "x", "path": "a/b"}), "path: "),
        (json!({"name": "x", "path": ""}), "path: "),
        (json!({"name": "x", "path": "a".repeat(65)}), "path: "),
        (json!({"path": "orders"}), "name: is required"),
        (json!({"name": "", "path": "orders"}), "name: "),
        (json!({"name": "x".repeat(201), "path": "orders"}), "name: "),
        (
            json!({"name": "x", "path": "orders", "color": "red"}),
            "color: unknown field",
        ),
        (
            json!({"name": "x", "path": "orders", "id": "mine"}),
            "id: unknown field",
        ),
        (json!(["not", "an", "object"]), "body: "),
        (
            json!({"name": "x", "path": "o", "endpoints": [{"method": "FETCH", "path": "/", "response": {}}]}),
            "endpoints[0].method: ",
        ),
        (
            json!({"name": "x", "path": "o", "endpoints": [{"method": "GET", "path": "no-slash", "response": {}}]}),
            "endpoints[0].path: ",
        ),
        (
            json!({"name": "x", "path": "o", "endpoints": [{"method": "GET", "path": "/a//b", "response": {}}]}),
            "endpoints[0].path: ",
        ),
        (
            json!({"name": "x", "path": "o", "endpoints": [{"method": "GET", "path": "/a"}]}),
            "endpoints[0]: ",
        ),
        (
            json!({"name": "x", "path": "o", "endpoints": [{"method": "GET", "path": "/a", "response": {}, "upstream": "http://h"}]}),
            "endpoints[0]: ",
        ),
        (
            json!({"name": "x", "path": "o", "endpoints": [{"method": "GET", "path": "/a", "upstream": "ftp://h"}]}),
            "endpoints[0].upstream: must be an absolute http:// or https:// URL",
        ),
        (
            json!({"name": "x", "path": "o", "endpoints": [{"method": "GET", "path": "/a", "upstream": "h:80"}]}),
            "endpoints[0].upstream: ",
        ),
        (
            json!({"name": "x", "path": "o", "endpoints": [{"method": "GET", "path": "/a", "response": {"status": 99}}]}),
            "endpoints[0].response.status: ",
        ),
        (
            json!({"name": "x", "path": "o", "endpoints": [{"method": "GET", "path": "/a", "response": {"headers": {"content-length": "1"}}}]}),
            "endpoints[0].response.headers.content-length: ",
        ),
        (
            json!({"name": "x", "path": "o", "endpoints": [{"method": "GET", "path": "/a", "response": {}, "verb": "x"}]}),
            "endpoints[0].verb: unknown field",
        ),
    ];
    for (body, prefix) in cases {
        let (status, answer) = server
            .call("POST", "/v1/collections", Some(body.clone()))
            .await;
        assert_error(
            status,
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_input",
            prefix,
        );
    }
    // Not JSON at all.
    let auth = format!("Bearer {ADMIN_KEY}");
    let (status, _, answer) = request(
        server.addr,
        "POST",
        "/v1/collections",
        &[("authorization", &auth)],
        Some("{\"name\": "),
    )
    .await;
    assert_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "body: ",
    );
    let (status, _, answer) = request(
        server.addr,
        "POST",
        "/v1/collections",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "body: ",
    );
    // Nothing was created by any of it.
    let (_, list) = server.call("GET", "/v1/collections", None).await;
    assert_eq!(list["items"], json!([]));
    assert_eq!(server.admin.state().await.revision, 0);
    server.stop().await;
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_refused() {
    let server = AdminServer::start().await;
    let auth = format!("Bearer {ADMIN_KEY}");
    let huge = format!(
        "{{\"name\":\"{}\",\"path\":\"big\"}}",
        "x".repeat(1024 * 1024)
    );
    let (status, _, body) = request(
        server.addr,
        "POST",
        "/v1/collections",
        &[("authorization", &auth)],
        Some(&huge),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "",
    );
    server.stop().await;
}

#[tokio::test]
async fn clients_have_portal_urls_and_cascade() {
    let server = AdminServer::start().await;
    let client = create_client(&server, "Acme").await;
    let id = client["id"].as_str().unwrap();
    let key = client["portal_key"].as_str().unwrap();
    assert!(
        is_token(&client["portal_key"]),
        "portal key is 32 random bytes hex"
    );
    assert_eq!(
        client["portal_url"],
        format!("http://gateway.test:8080/_tokengate/portal/{key}")
    );
    assert_eq!(client["active"], true);
    let other = create_client(&server, "Globex").await;
    assert_ne!(other["portal_key"], client["portal_key"]);

    let (status, list) = server.call("GET", "/v1/clients", None).await;
    assert_eq!(status, StatusCode::OK);
    // Lists are in id order (the paging cursor), not creation order.
    let mut both = vec![client.clone(), other.clone()];
    both.sort_by_key(|c| c["id"].as_str().unwrap().to_owned());
    assert_eq!(list["items"], json!(both));
    let (_, one) = server.call("GET", &format!("/v1/clients/{id}"), None).await;
    assert_eq!(one, client);

    let (status, body) = server.call("POST", "/v1/clients", Some(json!({}))).await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "name: ",
    );
    let (status, body) = server
        .call(
            "PATCH",
            &format!("/v1/clients/{id}"),
            Some(json!({"portal_key": "mine"})),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "portal_key: unknown field",
    );

    // Disabling a client disables its profiles in the registry, and voids cached verifications.
    let profile = create_token_profile(&server, id, json!([])).await;
    let token = profile["auth_token"].as_str().unwrap().to_owned();
    let digest = token_digest(token.as_bytes());
    let snapshot = server.admin.registry().snapshot();
    let entry = snapshot
        .profile_by_token(&digest)
        .expect("installed before the 201");
    assert!(entry.profile.active);
    let generation = profile["generation"].as_u64().unwrap();

    let (status, patched) = server
        .call(
            "PATCH",
            &format!("/v1/clients/{id}"),
            Some(json!({"active": false, "name": "Acme Inc"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["active"], false);
    assert_eq!(patched["name"], "Acme Inc");
    let snapshot = server.admin.registry().snapshot();
    assert!(!snapshot.profile_by_token(&digest).unwrap().profile.active);
    let (_, after) = server
        .call(
            "GET",
            &format!("/v1/profiles/{}", profile["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert!(after["generation"].as_u64().unwrap() > generation);

    // Deleting the client deletes its profiles.
    let (status, _) = server
        .call("DELETE", &format!("/v1/clients/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, profiles) = server.call("GET", "/v1/profiles", None).await;
    assert_eq!(profiles["items"], json!([]));
    assert!(server
        .admin
        .registry()
        .snapshot()
        .profile_by_token(&digest)
        .is_none());
    let (status, _) = server.call("GET", &format!("/v1/clients/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn profile_token_is_shown_once_then_masked() {
    let server = AdminServer::start().await;
    let collection = create_collection(&server, "orders").await;
    let client = create_client(&server, "Acme").await;
    let client_id = client["id"].as_str().unwrap();
    let created = create_token_profile(&server, client_id, json!([collection["id"]])).await;
    assert!(is_token(&created["auth_token"]), "{created}");
    let token = created["auth_token"].as_str().unwrap();
    assert_eq!(created["auth_token_masked"], format!("…{}", &token[60..]));
    assert_eq!(created["auth"], json!({"type": "token"}));
    assert_eq!(created["client_id"], client_id);
    assert_eq!(created["collections"], json!([collection["id"]]));
    assert_eq!(created["active"], true);

    let id = created["id"].as_str().unwrap();
    let (status, shown) = server
        .call("GET", &format!("/v1/profiles/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(shown.get("auth_token").is_none(), "{shown}");
    assert_eq!(shown["auth_token_masked"], created["auth_token_masked"]);
    let text = shown.to_string();
    assert!(!text.contains(token));
    assert!(!text.contains("sha256"));
    let digest_hex = tokengate::core::token::hex(&token_digest(token.as_bytes()));
    assert!(!text.contains(&digest_hex));

    // Listing, filtered by client or not, is masked too.
    let second = create_client(&server, "Globex").await;
    create_token_profile(&server, second["id"].as_str().unwrap(), json!([])).await;
    let (_, all) = server.call("GET", "/v1/profiles", None).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    assert!(!all.to_string().contains(token));
    let (_, mine) = server
        .call("GET", &format!("/v1/profiles?client_id={client_id}"), None)
        .await;
    assert_eq!(mine["items"], json!([shown.clone()]));
    let (_, nested) = server
        .call("GET", &format!("/v1/clients/{client_id}/profiles"), None)
        .await;
    assert_eq!(nested["items"], json!([shown]));
    server.stop().await;
}

#[tokio::test]
async fn bad_profile_input_names_the_field() {
    let server = AdminServer::start().await;
    let client = create_client(&server, "Acme").await;
    let path = format!("/v1/clients/{}/profiles", client["id"].as_str().unwrap());
    let cases = [
        (json!({"auth": {"type": "token"}}), "name: is required"),
        (json!({"name": "p"}), "auth: is required"),
        (
            json!({"name": "p", "auth": {"type": "magic"}}),
            "auth.type: ",
        ),
        (
            json!({"name": "p", "auth": {"type": "token", "secret": "x"}}),
            "auth.secret: unknown field",
        ),
        (
            json!({"name": "p", "auth": {"type": "jwt", "alg": "none"}}),
            "auth.alg: ",
        ),
        (
            json!({"name": "p", "auth": {"type": "jwt", "alg": "HS256"}}),
            "auth.secret: ",
        ),
        (
            json!({"name": "p", "auth": {"type": "jwt", "alg": "RS256"}}),
            "auth.public_key: ",
        ),
        (
            json!({"name": "p", "auth": {"type": "token"}, "collections": ["nope"]}),
            "collections[0]: no such collection",
        ),
        (
            json!({"name": "p", "auth": {"type": "token"}, "ip_allow": ["10.0.0.0/8", "10.0.0.300"]}),
            "ip_allow[1]: ",
        ),
        (
            json!({"name": "p", "auth": {"type": "token"}, "ip_allow": "10.0.0.0/8"}),
            "ip_allow: ",
        ),
        (
            json!({"name": "p", "auth": {"type": "token"}, "policy": {"rate_limit": {"requests": 0, "per_s": 1}}}),
            "policy.rate_limit.requests: ",
        ),
        (
            json!({"name": "p", "auth": {"type": "token"}, "policy": {"rate_limit": {"requests": 5, "per_s": 0}}}),
            "policy.rate_limit.per_s: ",
        ),
        (
            json!({"name": "p", "auth": {"type": "token"}, "policy": {"burst": 1}}),
            "policy.burst: unknown field",
        ),
        (
            json!({"name": "p", "auth": {"type": "token"}, "client_id": "x"}),
            "client_id: unknown field",
        ),
    ];
    for (body, prefix) in cases {
        let (status, answer) = server.call("POST", &path, Some(body)).await;
        assert_error(
            status,
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_input",
            prefix,
        );
    }
    let (status, answer) = server
        .call(
            "POST",
            "/v1/clients/nope/profiles",
            Some(json!({"name": "p", "auth": {"type": "token"}})),
        )
        .await;
    assert_error(
        status,
        &answer,
        StatusCode::NOT_FOUND,
        "not_found",
        "no such client",
    );
    server.stop().await;
}

#[tokio::test]
async fn jwt_keys_are_checked_and_never_shown() {
    let server = AdminServer::start().await;
    let client = create_client(&server, "Acme").await;
    let path = format!("/v1/clients/{}/profiles", client["id"].as_str().unwrap());

    // Fewer than 32 key bytes: refused by the registry's key parser, naming the field.
    let (status, answer) = server
        .call("POST", &path, Some(json!({"name": "p", "auth": {"type": "jwt", "alg": "HS256", "secret": "too short"}})))
        .await;
    assert_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "auth.secret: ",
    );
    assert!(
        !answer.to_string().contains("too short"),
        "the secret is not echoed"
    );
    // RSA under 2048 bits.
    let small = std::fs::read_to_string("tests/data/jwt-interop/rsa1024.spki.pem").unwrap();
    let (status, answer) = server
        .call(
            "POST",
            &path,
            Some(
                json!({"name": "p", "auth": {"type": "jwt", "alg": "RS256", "public_key": small}}),
            ),
        )
        .await;
    assert_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "auth.public_key: ",
    );

    // A private key where the public key belongs: refused, never stored, never echoed.
    for private in ["ssh_rsa", "rsa2048.key"] {
        let text = std::fs::read_to_string(format!("tests/data/jwt-interop/{private}")).unwrap();
        let (status, answer) = server
            .call(
                "POST",
                &path,
                Some(json!({"name": "p", "auth": {"type": "jwt", "alg": "RS256", "public_key": text}})),
            )
            .await;
        assert_error(
            status,
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "auth.public_key: is a private key",
        );
        let body_line = text.lines().nth(1).unwrap();
        assert!(
            !answer.to_string().contains(body_line),
            "the key is not echoed"
        );
    }
    assert!(server.admin.state().await.profiles.is_empty());

    let secret = "0123456789abcdef0123456789abcdef-long-enough";
    let (status, hs) = server
        .call("POST", &path, Some(json!({"name": "hs", "auth": {"type": "jwt", "alg": "HS256", "secret": secret, "required_claims": ["exp"]}})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hs}");
    assert_eq!(hs["auth"]["secret_set"], true);
    assert!(hs["auth"].get("secret").is_none());
    assert!(!hs.to_string().contains(secret));

    let public = std::fs::read_to_string("tests/data/jwt-interop/ssh_rsa.pub").unwrap();
    let (status, rs) = server
        .call("POST", &path, Some(json!({"name": "rs", "auth": {"type": "jwt", "alg": "RS256", "public_key": public}})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rs}");
    assert_eq!(rs["auth"]["public_key_set"], true);
    assert!(rs["auth"].get("public_key").is_none());
    let key_body = public.split_whitespace().nth(1).unwrap();
    let (_, all) = server.call("GET", "/v1/profiles", None).await;
    let text = all.to_string();
    assert!(!text.contains(secret) && !text.contains(key_body));

    // PATCH may change JWT settings without pasting the key again.
    let hs_id = hs["id"].as_str().unwrap();
    let (status, patched) = server
        .call(
            "PATCH",
            &format!("/v1/profiles/{hs_id}"),
            Some(json!({"auth": {"type": "jwt", "alg": "HS256", "leeway_s": 5}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["auth"]["leeway_s"], 5);
    assert_eq!(patched["auth"]["secret_set"], true);
    let state = server.admin.state().await;
    let stored = state.profiles.iter().find(|p| p.id == hs_id).unwrap();
    let tokengate::core::model::AuthConfig::Jwt(jwt) = &stored.auth else {
        panic!("not jwt")
    };
    assert_eq!(jwt.secret.as_deref(), Some(secret));
    server.stop().await;
}

#[tokio::test]
async fn patch_profile_changes_only_what_it_names() {
    let server = AdminServer::start().await;
    let orders = create_collection(&server, "orders").await;
    let billing = create_collection(&server, "billing").await;
    let client = create_client(&server, "Acme").await;
    let created = create_token_profile(
        &server,
        client["id"].as_str().unwrap(),
        json!([orders["id"]]),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let (status, patched) = server
        .call(
            "PATCH",
            &format!("/v1/profiles/{id}"),
            Some(json!({
                "name": "renamed",
                "collections": [orders["id"], billing["id"], orders["id"]],
                "ip_allow": ["192.168.1.7/24", "::1"],
                "policy": {"rate_limit": {"requests": 10, "per_s": 1}},
                "active": false
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "renamed");
    assert_eq!(patched["collections"], json!([orders["id"], billing["id"]]));
    assert_eq!(patched["ip_allow"], json!(["192.168.1.0/24", "::1/128"]));
    assert_eq!(
        patched["policy"],
        json!({"rate_limit": {"requests": 10, "per_s": 1}})
    );
    assert_eq!(patched["active"], false);
    assert_eq!(patched["auth_token_masked"], created["auth_token_masked"]);
    assert!(patched["generation"].as_u64() > created["generation"].as_u64());
    assert!(patched.get("auth_token").is_none());

    // null clears the optional parts.
    let (_, cleared) = server
        .call(
            "PATCH",
            &format!("/v1/profiles/{id}"),
            Some(json!({"policy": null, "ip_allow": null})),
        )
        .await;
    assert_eq!(cleared["policy"], Value::Null);
    assert_eq!(cleared["ip_allow"], json!([]));
    assert_eq!(cleared["name"], "renamed");

    for (body, prefix) in [
        (json!({"token": "x"}), "token: unknown field"),
        (
            json!({"collections": ["nope"]}),
            "collections[0]: no such collection",
        ),
        (json!({"name": 5}), "name: "),
        (json!({"ip_allow": ["bad"]}), "ip_allow[0]: "),
    ] {
        let (status, answer) = server
            .call("PATCH", &format!("/v1/profiles/{id}"), Some(body))
            .await;
        assert_error(
            status,
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_input",
            prefix,
        );
    }
    // Deleting a collection removes it from every profile.
    let (status, _) = server
        .call(
            "DELETE",
            &format!("/v1/collections/{}", billing["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, after) = server
        .call("GET", &format!("/v1/profiles/{id}"), None)
        .await;
    assert_eq!(after["collections"], json!([orders["id"]]));

    let (status, _) = server
        .call("DELETE", &format!("/v1/profiles/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server
        .call("GET", &format!("/v1/profiles/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn refresh_returns_a_new_token_and_retires_the_old_one() {
    let server = AdminServer::start().await;
    let client = create_client(&server, "Acme").await;
    let created = create_token_profile(&server, client["id"].as_str().unwrap(), json!([])).await;
    let id = created["id"].as_str().unwrap();
    let first = created["auth_token"].as_str().unwrap().to_owned();

    // No body: the old token stops at once.
    let auth = format!("Bearer {ADMIN_KEY}");
    let (status, _, refreshed) = request(
        server.addr,
        "POST",
        &format!("/v1/profiles/{id}/refresh"),
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let second = refreshed["auth_token"].as_str().unwrap().to_owned();
    assert!(is_token(&refreshed["auth_token"]));
    assert_ne!(second, first);
    assert_eq!(
        refreshed["auth_token_masked"],
        format!("…{}", &second[60..])
    );
    assert!(refreshed["generation"].as_u64() > created["generation"].as_u64());
    assert!(refreshed.get("previous_token_valid_until_ms").is_none());
    let snapshot = server.admin.registry().snapshot();
    assert!(snapshot
        .profile_by_token(&token_digest(first.as_bytes()))
        .is_none());
    assert!(snapshot
        .profile_by_token(&token_digest(second.as_bytes()))
        .is_some());

    // With grace_s the previous token lives on until its deadline.
    let (status, graced) = server
        .call(
            "POST",
            &format!("/v1/profiles/{id}/refresh"),
            Some(json!({"grace_s": 60})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{graced}");
    let third = graced["auth_token"].as_str().unwrap();
    assert_ne!(third, second);
    assert_ne!(graced["auth_token_masked"], refreshed["auth_token_masked"]);
    let until = graced["previous_token_valid_until_ms"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        until > now + 50_000 && until <= now + 60_000,
        "{until} vs {now}"
    );
    let snapshot = server.admin.registry().snapshot();
    let old = snapshot
        .profile_by_token(&token_digest(second.as_bytes()))
        .unwrap();
    assert_eq!(old.valid_until_ms, Some(until));
    assert!(snapshot
        .profile_by_token(&token_digest(third.as_bytes()))
        .is_some());

    for (body, prefix) in [
        (json!({"grace_s": 604_801}), "grace_s: "),
        (json!({"grace_s": -1}), "grace_s: "),
        (json!({"grace": 5}), "grace: unknown field"),
    ] {
        let (status, answer) = server
            .call("POST", &format!("/v1/profiles/{id}/refresh"), Some(body))
            .await;
        assert_error(
            status,
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_input",
            prefix,
        );
    }
    let (status, _) = server.call("POST", "/v1/profiles/nope/refresh", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn the_twenty_first_profile_is_a_conflict() {
    let server = AdminServer::start().await;
    let client = create_client(&server, "Acme").await;
    let client_id = client["id"].as_str().unwrap();
    for _ in 0..20 {
        create_token_profile(&server, client_id, json!([])).await;
    }
    let (status, body) = server
        .call(
            "POST",
            &format!("/v1/clients/{client_id}/profiles"),
            Some(json!({"name": "one too many", "auth": {"type": "token"}})),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict", "");
    // Another client is not affected.
    let other = create_client(&server, "Globex").await;
    create_token_profile(&server, other["id"].as_str().unwrap(), json!([])).await;
    server.stop().await;
}

#[tokio::test]
async fn changes_are_durable_and_the_state_file_holds_no_token() {
    let server = AdminServer::start().await;
    let collection = create_collection(&server, "orders").await;
    let client = create_client(&server, "Acme").await;
    let profile = create_token_profile(
        &server,
        client["id"].as_str().unwrap(),
        json!([collection["id"]]),
    )
    .await;
    let token = profile["auth_token"].as_str().unwrap().to_owned();
    let (_, refreshed) = server
        .call(
            "POST",
            &format!("/v1/profiles/{}/refresh", profile["id"].as_str().unwrap()),
            Some(json!({"grace_s": 30})),
        )
        .await;
    let new_token = refreshed["auth_token"].as_str().unwrap().to_owned();

    let in_memory = server.admin.state().await;
    assert_eq!(in_memory.revision, 4);
    let dir = server.stop().await;
    // What a fresh process would read.
    let on_disk = open_store(dir.path()).load().unwrap();
    assert_eq!(on_disk, in_memory);

    assert_eq!(mode(&dir.path().join("tokengate.db")), 0o600);
    let bytes = store_bytes(dir.path());
    let stored = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!stored(&token), "the raw token is not stored");
    assert!(!stored(&new_token), "the raw token is not stored");
    assert!(stored(&tokengate::core::token::hex(&token_digest(
        new_token.as_bytes()
    ))));

    // A restart over the same directory serves the same objects and tokens.
    let again = AdminServer::start_in(dir).await;
    let (_, shown) = again
        .call(
            "GET",
            &format!("/v1/profiles/{}", profile["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(shown["auth_token_masked"], refreshed["auth_token_masked"]);
    let snapshot = again.admin.registry().snapshot();
    assert!(snapshot
        .profile_by_token(&token_digest(new_token.as_bytes()))
        .is_some());
    again.stop().await;
}

#[tokio::test]
async fn a_corrupt_state_file_stops_the_admin_from_opening() {
    let dir = TempDir::new();
    std::fs::write(
        dir.path().join("state.json"),
        "{\"format\":1,\"collections\":[",
    )
    .unwrap();
    let (secrets, _) = load_or_create_secrets_key(dir.path(), None, true).unwrap();
    let err = SqliteStore::open(dir.path(), secrets).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("state.json") && text.contains("refuses to start"),
        "{text}"
    );
    // And the file is left as it was, for the operator to inspect.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("state.json")).unwrap(),
        "{\"format\":1,\"collections\":["
    );
}

/// A store whose commits fail on demand, as a database that went away would.
struct FlakyStore {
    inner: SqliteStore,
    fail: AtomicBool,
}

impl Store for FlakyStore {
    fn load(&self) -> Result<State, StoreError> {
        self.inner.load()
    }

    fn commit_with(
        &self,
        known_revision: u64,
        prepare: &mut dyn FnMut(Gap) -> Result<ChangeSet, Aborted>,
    ) -> Result<u64, CommitError> {
        if self.fail.load(Ordering::SeqCst) {
            // The change is prepared (applied in memory, compiled), then the commit fails.
            prepare(None).map_err(|Aborted| CommitError::Aborted)?;
            return Err(CommitError::Store(StoreError::unavailable(
                "db",
                "the database is unreachable",
            )));
        }
        self.inner.commit_with(known_revision, prepare)
    }
}

#[tokio::test]
async fn a_failed_save_changes_nothing() {
    let dir = Arc::new(TempDir::new());
    let store = Arc::new(FlakyStore {
        inner: open_store(dir.path()),
        fail: AtomicBool::new(false),
    });
    let server = AdminServer::start_with_store(dir, store.clone()).await;
    let client = create_client(&server, "Acme").await;
    let profile = create_token_profile(&server, client["id"].as_str().unwrap(), json!([])).await;
    let token = profile["auth_token"].as_str().unwrap().to_owned();
    let before = server.admin.state().await;

    store.fail.store(true, Ordering::SeqCst);
    let (status, body) = server
        .call(
            "POST",
            &format!("/v1/profiles/{}/refresh", profile["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the store cannot be written",
    );
    assert!(body.get("auth_token").is_none());
    let (status, _) = server
        .call("POST", "/v1/collections", Some(orders_collection("orders")))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    // Memory, registry and disk are as before: the old token still works.
    assert_eq!(server.admin.state().await, before);
    let snapshot = server.admin.registry().snapshot();
    assert!(snapshot
        .profile_by_token(&token_digest(token.as_bytes()))
        .is_some());
    assert_eq!(store.inner.load().unwrap(), before);

    store.fail.store(false, Ordering::SeqCst);
    create_collection(&server, "orders").await;
    assert_eq!(server.admin.state().await.revision, before.revision + 1);
    server.stop().await;
}

#[tokio::test]
async fn handle_serves_in_process_requests_too() {
    // What `serve --demo` seeding can do: the same validated path, without a socket.
    let server = AdminServer::start().await;
    let request = http::Request::builder()
        .method("POST")
        .uri("/v1/clients")
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            br#"{"name":"Demo"}"#,
        )))
        .unwrap();
    let response = server.admin.handle(request).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let (_, list) = server.call("GET", "/v1/clients", None).await;
    assert_eq!(list["items"][0]["name"], "Demo");
    server.stop().await;
}

/// From the `admin_input` fuzz target (fuzz/regressions/admin_input/state-too-deep-to-reload.json):
/// a fixed-response body nested 122 deep was accepted and saved, and then the store could not
/// read its own file back, so the server would not start again.
#[tokio::test]
async fn a_fixed_body_too_deep_to_store_is_refused_and_the_store_reloads() {
    let server = AdminServer::start().await;
    let nested = |levels: usize| -> Value {
        serde_json::from_str(&format!("{}{}", "[".repeat(levels), "]".repeat(levels))).unwrap()
    };
    let (status, answer) = server
        .call(
            "POST",
            "/v1/collections",
            Some(json!({"name": "deep", "path": "deep", "endpoints": [
                {"method": "GET", "path": "/", "response": {"body": nested(122)}}]})),
        )
        .await;
    assert_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "endpoints[0].response.body: must nest arrays and objects at most 64 levels deep",
    );
    let (status, answer) = server
        .call(
            "POST",
            "/v1/collections",
            Some(json!({"name": "deep", "path": "deep", "endpoints": [
                {"method": "GET", "path": "/", "response": {"body": nested(64)}}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    // The saved state reads back: a restart over the same directory opens it.
    let dir = server.stop().await;
    let again = AdminServer::start_in(dir).await;
    let (status, listed) = again.call("GET", "/v1/collections", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["items"][0]["path"], "deep");
    again.stop().await;
}
