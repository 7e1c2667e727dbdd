//! Admin changes reach the front door before the admin answers: the SPEC's "no request that
//! starts after the refresh response may succeed with the old token".

use std::sync::Arc;
use std::time::Duration;

use crate::support::{request, AdminServer};
use http::StatusCode;
use serde_json::json;
use tokengate::door::{DoorLimits, DoorService, FrontDoor};
use tokengate::server::metrics::Metrics;
use tokengate::server::{serve, ServerLimits};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A front door over `admin`'s registry, on a free port.
async fn start_door(server: &AdminServer) -> (std::net::SocketAddr, watch::Sender<bool>) {
    let door = Arc::new(FrontDoor::new(
        server.admin.registry(),
        10_000,
        Duration::from_secs(5),
        DoorLimits::default(),
        Arc::new(Metrics::default()),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(serve(
        listener,
        move |peer| DoorService::new(Arc::clone(&door), peer),
        ServerLimits::default(),
        stopped,
        None,
        None,
    ));
    (addr, stop)
}

#[tokio::test]
async fn refresh_disable_and_collection_changes_apply_before_the_answer() {
    let server = AdminServer::start().await;
    let (door, stop) = start_door(&server).await;
    let (_, collection) = server
        .call(
            "POST",
            "/v1/collections",
            Some(json!({"name": "Orders", "path": "orders", "endpoints": [
                {"method": "GET", "path": "/list", "response": {"status": 200, "body": {"ok": true}}}
            ]})),
        )
        .await;
    let (_, client) = server
        .call("POST", "/v1/clients", Some(json!({"name": "Acme"})))
        .await;
    let client_id = client["id"].as_str().unwrap();
    let (_, profile) = server
        .call(
            "POST",
            &format!("/v1/clients/{client_id}/profiles"),
            Some(
                json!({"name": "p", "collections": [collection["id"]], "auth": {"type": "token"}}),
            ),
        )
        .await;
    let profile_id = profile["id"].as_str().unwrap();
    let first = profile["auth_token"].as_str().unwrap().to_owned();

    let call = |token: String| async move {
        let (status, _, body) =
            request(door, "GET", "/orders/list", &[("api-token", &token)], None).await;
        (status, body)
    };
    // Twice: the second is a cache hit.
    for _ in 0..2 {
        let (status, body) = call(first.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({"ok": true}));
    }

    // Refresh without grace: the old token, cached, fails at once; the new one works.
    let (_, refreshed) = server
        .call("POST", &format!("/v1/profiles/{profile_id}/refresh"), None)
        .await;
    let second = refreshed["auth_token"].as_str().unwrap().to_owned();
    let (status, body) = call(first.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(call(second.clone()).await.0, StatusCode::OK);

    // Refresh with grace: both work.
    let (_, graced) = server
        .call(
            "POST",
            &format!("/v1/profiles/{profile_id}/refresh"),
            Some(json!({"grace_s": 60})),
        )
        .await;
    let third = graced["auth_token"].as_str().unwrap().to_owned();
    assert_eq!(call(second.clone()).await.0, StatusCode::OK);
    assert_eq!(call(third.clone()).await.0, StatusCode::OK);

    // Disabling the client stops its profiles at once.
    server
        .call(
            "PATCH",
            &format!("/v1/clients/{client_id}"),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(call(third.clone()).await.0, StatusCode::UNAUTHORIZED);
    server
        .call(
            "PATCH",
            &format!("/v1/clients/{client_id}"),
            Some(json!({"active": true})),
        )
        .await;
    assert_eq!(call(third.clone()).await.0, StatusCode::OK);

    // Taking the collection away: 403.
    server
        .call(
            "PATCH",
            &format!("/v1/profiles/{profile_id}"),
            Some(json!({"collections": []})),
        )
        .await;
    let (status, body) = call(third.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // An IP allow-list that excludes loopback: 403; one that includes it: 200.
    server
        .call(
            "PATCH",
            &format!("/v1/profiles/{profile_id}"),
            Some(json!({"collections": [collection["id"]], "ip_allow": ["10.0.0.0/8"]})),
        )
        .await;
    assert_eq!(call(third.clone()).await.0, StatusCode::FORBIDDEN);
    server
        .call(
            "PATCH",
            &format!("/v1/profiles/{profile_id}"),
            Some(json!({"ip_allow": ["127.0.0.1"]})),
        )
        .await;
    assert_eq!(call(third.clone()).await.0, StatusCode::OK);

    // Deleting the profile: 401.
    server
        .call("DELETE", &format!("/v1/profiles/{profile_id}"), None)
        .await;
    assert_eq!(call(third).await.0, StatusCode::UNAUTHORIZED);

    stop.send(true).unwrap();
    server.stop().await;
}
