//! List calls in pages (`?limit=&after=`, SPEC §4), and changes that compile only what they touch:
//! through the real admin API over loopback.

use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Value};

use crate::support::AdminServer;
use tokengate::core::token::token_digest;

async fn expect(server: &AdminServer, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, value) = server.call(method, path, body).await;
    assert!(status.is_success(), "{method} {path}: {status} {value}");
    value
}

/// Every page of `path` with `limit`, following `next`; the ids in the order they came.
async fn walk(server: &AdminServer, path: &str, limit: usize) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut after: Option<String> = None;
    loop {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = match &after {
            Some(a) => format!("{path}{separator}limit={limit}&after={a}"),
            None => format!("{path}{separator}limit={limit}"),
        };
        let page = expect(server, "GET", &url, None).await;
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit, "{page}");
        ids.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => {
                assert_eq!(Some(next), ids.last().map(String::as_str), "{page}");
                after = Some(next.to_owned());
            }
            None => {
                assert!(page["next"].is_null(), "{page}");
                return (ids, pages);
            }
        }
    }
}

#[tokio::test]
async fn every_list_call_pages_by_id_and_ends_with_next_null() {
    let server = AdminServer::start().await;
    let mut client_ids = Vec::new();
    for n in 0..7 {
        let client = expect(
            &server,
            "POST",
            "/v1/clients",
            Some(json!({"name": format!("c{n}")})),
        )
        .await;
        client_ids.push(client["id"].as_str().unwrap().to_owned());
    }
    let mut sorted = client_ids.clone();
    sorted.sort();

    let (ids, pages) = walk(&server, "/v1/clients", 3).await;
    assert_eq!(ids, sorted);
    assert_eq!(pages, 3);
    // Default: one page of up to 100.
    let all = expect(&server, "GET", "/v1/clients", None).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 7);
    assert!(all["next"].is_null());
    // A cursor past the end is an empty last page.
    let past = expect(&server, "GET", "/v1/clients?after=zzzz", None).await;
    assert_eq!(past, json!({"items": [], "next": null}));

    for bad in ["0", "1001", "-1", "ten", ""] {
        let (status, body) = server
            .call("GET", &format!("/v1/collections?limit={bad}"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "limit={bad}: {body}");
        assert_eq!(body["error"], "invalid_input", "{body}");
        assert!(
            body["message"].as_str().unwrap().starts_with("limit"),
            "{body}"
        );
    }

    // Profiles: all of them, one client's (two spellings), each in pages.
    let first = &client_ids[0];
    let mut profile_ids = Vec::new();
    for n in 0..5 {
        let owner = if n < 4 { first } else { &client_ids[1] };
        let profile = expect(
            &server,
            "POST",
            &format!("/v1/clients/{owner}/profiles"),
            Some(json!({"name": format!("p{n}"), "auth": {"type": "token"}})),
        )
        .await;
        if n < 4 {
            profile_ids.push(profile["id"].as_str().unwrap().to_owned());
        }
    }
    profile_ids.sort();
    let (mine, pages) = walk(&server, &format!("/v1/clients/{first}/profiles"), 3).await;
    assert_eq!((mine.clone(), pages), (profile_ids.clone(), 2));
    let (mine_too, _) = walk(&server, &format!("/v1/profiles?client_id={first}"), 1).await;
    assert_eq!(mine_too, profile_ids);
    let (everyone, _) = walk(&server, "/v1/profiles", 2).await;
    assert_eq!(everyone.len(), 5);
    let page = expect(&server, "GET", "/v1/profiles?limit=2", None).await;
    assert!(
        page["items"][0].get("auth_token").is_none(),
        "lists stay masked"
    );
    // The embedded store: one node, this one, always ready (SPEC §4 /v1/nodes, /readyz).
    let nodes = expect(&server, "GET", "/v1/nodes", None).await;
    assert_eq!(nodes["items"].as_array().unwrap().len(), 1, "{nodes}");
    assert_eq!(nodes["items"][0]["live"], true, "{nodes}");
    assert_eq!(nodes["items"][0]["lag"], 0, "{nodes}");
    let ready = expect(&server, "GET", "/readyz", None).await;
    assert_eq!(ready, json!({"status": "ready"}));
    server.stop().await;
}

#[tokio::test]
async fn a_change_compiles_only_what_it_touches_and_keeps_parsed_keys() {
    let server = AdminServer::start().await;
    let public = std::fs::read_to_string("tests/data/jwt-interop/ssh_rsa.pub").unwrap();
    let client = expect(
        &server,
        "POST",
        "/v1/clients",
        Some(json!({"name": "Acme"})),
    )
    .await;
    let client_id = client["id"].as_str().unwrap();
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for name in ["a", "b"] {
        let profile = expect(
            &server,
            "POST",
            &format!("/v1/clients/{client_id}/profiles"),
            Some(json!({"name": name, "auth": {"type": "jwt", "alg": "RS256", "public_key": public}})),
        )
        .await;
        tokens.push(token_digest(
            profile["auth_token"].as_str().unwrap().as_bytes(),
        ));
        ids.push(profile["id"].as_str().unwrap().to_owned());
    }
    let compiled = |digest| {
        let snapshot = server.admin.registry().snapshot();
        Arc::clone(&snapshot.profile_by_token(digest).unwrap().profile)
    };
    let a_before = compiled(&tokens[0]);

    // A change to b leaves a's compiled profile as it was: the same object, not a copy.
    expect(
        &server,
        "PATCH",
        &format!("/v1/profiles/{}", ids[1]),
        Some(json!({"name": "b2"})),
    )
    .await;
    assert!(Arc::ptr_eq(&a_before, &compiled(&tokens[0])));
    assert_eq!(&*compiled(&tokens[1]).name, "b2");

    // Renaming a recompiles a, but its parsed key is kept.
    expect(
        &server,
        "PATCH",
        &format!("/v1/profiles/{}", ids[0]),
        Some(json!({"name": "a2"})),
    )
    .await;
    let a_renamed = compiled(&tokens[0]);
    assert!(!Arc::ptr_eq(&a_before, &a_renamed));
    assert!(Arc::ptr_eq(&a_before.auth, &a_renamed.auth));
    // Disabling the client recompiles both (they turn inactive), keys kept.
    expect(
        &server,
        "PATCH",
        &format!("/v1/clients/{client_id}"),
        Some(json!({"active": false})),
    )
    .await;
    let a_off = compiled(&tokens[0]);
    assert!(!a_off.active);
    assert!(Arc::ptr_eq(&a_before.auth, &a_off.auth));
    // A new key is parsed anew.
    let pem = std::fs::read_to_string("tests/data/jwt-interop/rsa2048.spki.pem").unwrap();
    expect(
        &server,
        "PATCH",
        &format!("/v1/profiles/{}", ids[0]),
        Some(json!({"auth": {"type": "jwt", "alg": "RS256", "public_key": pem}})),
    )
    .await;
    assert!(!Arc::ptr_eq(&a_before.auth, &compiled(&tokens[0]).auth));

    // Deleting b removes its token from the snapshot; a is still there.
    let (status, _) = server
        .call("DELETE", &format!("/v1/profiles/{}", ids[1]), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let snapshot = server.admin.registry().snapshot();
    assert!(snapshot.profile_by_token(&tokens[1]).is_none());
    assert!(snapshot.profile_by_token(&tokens[0]).is_some());
    server.stop().await;
}
