//! State survives restarts and crashes; SIGTERM drains in-flight requests (SPEC §2, §4).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::gateway::{ping, AdminClient, Gateway};
use crate::support::process::Served;
use crate::support::upstream::Upstream;
use crate::support::{mode, send, TempDir};
use serde_json::json;

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn a_restart_keeps_state_and_the_data_dir_holds_no_raw_token() {
    let gw = Gateway::start().await;
    let api = gw.admin.collection("api", json!([ping("/ping")])).await;
    let access = gw
        .admin
        .access(
            "Acme",
            json!({"collections": [api], "auth": {"type": "token"}}),
        )
        .await;
    gw.get_with_token("/api/ping", &access.token)
        .await
        .assert_status(200);
    let dir = gw.stop().await;

    let gw = Gateway::start_in(dir, |_| {}).await;
    gw.get_with_token("/api/ping", &access.token)
        .await
        .assert_status(200);

    let state = gw.dir.path().join("tokengate.db");
    assert_eq!(mode(&state), 0o600);
    let all = files(gw.dir.path());
    assert!(all.contains(&state), "{all:?}");
    for file in &all {
        let bytes = std::fs::read(file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(&access.token),
            "{} holds the raw token",
            file.display()
        );
    }
    gw.stop().await;
}

/// Creates token profiles granted `collection` (10 per client) until the admin API stops
/// answering; pushes each acknowledged token onto `acknowledged`.
async fn create_until_gone(
    admin: AdminClient,
    collection: String,
    acknowledged: Arc<Mutex<Vec<String>>>,
) {
    let mut client_id = String::new();
    for n in 0.. {
        if n % 10 == 0 {
            match admin
                .try_call(
                    "POST",
                    "/v1/clients",
                    Some(&json!({"name": format!("c{n}")})),
                )
                .await
            {
                Ok((status, body)) if status == 201 => {
                    client_id = body["id"].as_str().unwrap().to_owned()
                }
                _ => return,
            }
        }
        let profile = json!({"name": format!("p{n}"), "collections": [collection], "auth": {"type": "token"}});
        match admin
            .try_call(
                "POST",
                &format!("/v1/clients/{client_id}/profiles"),
                Some(&profile),
            )
            .await
        {
            Ok((status, body)) if status == 201 => {
                let token = body["auth_token"].as_str().unwrap().to_owned();
                acknowledged.lock().unwrap().push(token);
            }
            _ => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_profile_survives_kill_9() {
    let dir = TempDir::new();
    let mut served = Served::spawn(dir.path(), &[]).await;
    let api = served.admin.collection("api", json!([ping("/ping")])).await;

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let creator = tokio::spawn(create_until_gone(served.admin, api, acknowledged.clone()));
    while acknowledged.lock().unwrap().len() < 20 {
        assert!(
            !creator.is_finished(),
            "profile creation stopped early:\n{}",
            served.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // SIGKILL while the creator keeps going.
    served.kill();
    creator.await.unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 20);

    let served = Served::spawn(dir.path(), &[]).await;
    for token in &acknowledged {
        send(served.data, "GET", "/api/ping", &[("api-token", token)], "")
            .await
            .assert_status(200);
    }
    let profiles = served
        .admin
        .expect(200, "GET", "/v1/profiles?limit=1000", None)
        .await;
    assert!(profiles["items"].as_array().unwrap().len() >= acknowledged.len());
}

/// Panics unless connecting to `addr` is refused within `limit`.
async fn refused_within(addr: std::net::SocketAddr, limit: Duration) {
    let started = std::time::Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            started.elapsed() < limit,
            "{addr} still accepts connections after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_in_flight_request_finish_then_exits_0() {
    let upstream = Upstream::echo_after(Duration::from_secs(1)).await;
    let dir = TempDir::new();
    let mut served = Served::spawn(dir.path(), &[]).await;
    let slow = served
        .admin
        .collection(
            "slow",
            json!([{"name": "slow", "method": "GET", "path": "/work", "upstream": upstream.url("/")}]),
        )
        .await;
    let access = served
        .admin
        .access(
            "Acme",
            json!({"collections": [slow], "auth": {"type": "token"}}),
        )
        .await;

    let data = served.data;
    let in_flight = tokio::spawn(async move {
        send(
            data,
            "GET",
            "/slow/work",
            &[("api-token", &access.token)],
            "",
        )
        .await
    });
    upstream.arrived().await;
    served.terminate();
    // While the request drains, both listeners are closed: new clients are refused at once
    // instead of waiting in the listen backlog for a server that will never accept them.
    for addr in [served.data, served.admin.addr] {
        refused_within(addr, Duration::from_millis(700)).await;
    }
    assert!(
        !in_flight.is_finished(),
        "the upstream takes 1 s, so the request is still in flight"
    );
    let reply = in_flight.await.unwrap();
    reply.assert_status(200);
    assert_eq!(reply.json()["uri"], "/work");
    let status = served.exit_status(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{}", served.log());
}

/// Dropping a running server without `shutdown()` stops it too: both layouts close their
/// listeners instead of spinning on the closed shutdown channel.
#[tokio::test]
async fn dropping_the_server_closes_its_listeners() {
    for layout in [
        tokengate::door::layout::Layout::per_core(),
        tokengate::door::layout::Layout::Shared,
    ] {
        let gateway = Gateway::start_with(|config| config.layout = layout).await;
        let data = gateway.data;
        assert!(tokio::net::TcpStream::connect(data).await.is_ok());
        drop(gateway);
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            if tokio::net::TcpStream::connect(data).await.is_err() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{layout:?}: still accepting after drop"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_binary_imports_a_state_json_once_and_keeps_it_renamed() {
    let dir = TempDir::new();
    let token = "7".repeat(64);
    let mut state =
        crate::support::fixtures::state_with(&token, tokengate::core::model::AuthConfig::Token);
    state.revision = 41;
    let text = serde_json::to_string_pretty(&state).unwrap();
    std::fs::write(dir.path().join("state.json"), &text).unwrap();

    let served = Served::spawn(dir.path(), &[]).await;
    send(
        served.data,
        "GET",
        "/api/ping",
        &[("api-token", &token)],
        "",
    )
    .await
    .assert_status(200);
    assert!(
        served.log().contains("imported the state file"),
        "{}",
        served.log()
    );
    let renamed: Vec<_> = files(dir.path())
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("state.json.imported-")
        })
        .collect();
    assert_eq!(renamed.len(), 1, "{:?}", files(dir.path()));
    assert_eq!(std::fs::read_to_string(&renamed[0]).unwrap(), text);
    assert!(!dir.path().join("state.json").exists());
    // A change, then a restart: the database is what counts now, not the old file.
    served
        .admin
        .expect(
            200,
            "PATCH",
            "/v1/profiles/p1",
            Some(json!({"active": false})),
        )
        .await;
    drop(served);
    let served = Served::spawn(dir.path(), &[]).await;
    send(
        served.data,
        "GET",
        "/api/ping",
        &[("api-token", &token)],
        "",
    )
    .await
    .assert_error(401, "invalid_token");
    assert!(!served.log().contains("imported the state file"));
}
