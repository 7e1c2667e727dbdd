//! Many nodes on one PostgreSQL (SPEC §4, §6), through the real binary: changes reach every node,
//! a refresh is dead on every node its answer counts, a node cut off from the database serves
//! from memory and catches up, concurrent starts migrate once, kill -9 loses nothing.
//! Each test gets its own database from `DATABASE_URL` (see `support::pg`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::gateway::ping;
use crate::support::pg::{fresh_database, query_text};
use crate::support::process::Served;
use crate::support::{send, TempDir};

const SECRETS_KEY: &str = "q1XbgTQqV3GS6OnRzbrUvH2e9LxEHg6G5iRH1YdKW8I=";

/// A node on `url` with its own data directory.
async fn node(url: &str, dir: &TempDir, extra: &[&str]) -> Served {
    let mut args = vec!["--store", url];
    args.extend_from_slice(extra);
    Served::spawn_with_env(dir.path(), &args, &[("TOKENGATE_SECRETS_KEY", SECRETS_KEY)]).await
}

/// Polls until `path` with `token` answers `status` on `data`, or panics after `limit`.
async fn wait_for(data: SocketAddr, token: &str, status: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let reply = send(data, "GET", "/api/ping", &[("api-token", token)], "").await;
        if reply.status == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{data}: still {} after {limit:?}, wanted {status}",
            reply.status
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One keep-alive connection sending `GET /api/ping` with `token` until `stop`; records
/// (time sent, status) of every request.
async fn hammer(
    data: SocketAddr,
    token: String,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<(Instant, u16)>>>,
) {
    let mut stream = TcpStream::connect(data).await.unwrap();
    let request = format!("GET /api/ping HTTP/1.1\r\nHost: t\r\nAPI-Token: {token}\r\n\r\n");
    let mut buffer = Vec::with_capacity(4096);
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        stream.write_all(request.as_bytes()).await.unwrap();
        buffer.clear();
        let status = loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the node closed the keep-alive connection");
            buffer.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buffer);
            if let Some(head_end) = text.find("\r\n\r\n") {
                let head = &text[..head_end];
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if buffer.len() >= head_end + 4 + length {
                    break head[9..12].parse::<u16>().unwrap();
                }
            }
        };
        log.lock().unwrap().push((sent, status));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_changes_and_a_refresh_is_dead_wherever_it_is_counted() {
    let Some(url) = fresh_database("three_nodes").await else {
        return;
    };
    let dirs = [TempDir::new(), TempDir::new(), TempDir::new()];
    let a = node(&url, &dirs[0], &[]).await;
    let b = node(&url, &dirs[1], &[]).await;
    let c = node(&url, &dirs[2], &[]).await;

    let api = a.admin.collection("api", json!([ping("/ping")])).await;
    let access = a
        .admin
        .access(
            "Acme",
            json!({"collections": [api], "auth": {"type": "token"}}),
        )
        .await;
    for other in [&b, &c] {
        let took = wait_for(other.data, &access.token, 200, Duration::from_secs(1)).await;
        eprintln!("a new profile answered on {} after {took:?}", other.data);
    }
    let nodes = b.admin.expect(200, "GET", "/v1/nodes", None).await;
    let items = nodes["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{nodes}");
    assert!(items.iter().all(|n| n["live"] == true), "{nodes}");

    // Hammer B and C with the token on keep-alive connections (cache and per-connection memo
    // hot), refresh on A, and check every request sent after A's answer.
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut hammers = Vec::new();
    for other in [&b, &c] {
        for _ in 0..2 {
            hammers.push(tokio::spawn(hammer(
                other.data,
                access.token.clone(),
                stop.clone(),
                log.clone(),
            )));
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refreshed = a
        .admin
        .expect(
            200,
            "POST",
            &format!("/v1/profiles/{}/refresh", access.profile_id),
            None,
        )
        .await;
    let answered = Instant::now();
    assert_eq!(
        refreshed["propagation"],
        json!({"applied": 3, "live": 3}),
        "{refreshed}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for h in hammers {
        h.await.unwrap();
    }
    let log: Vec<(Instant, u16)> = log.lock().unwrap().clone();
    let before = log
        .iter()
        .filter(|(t, s)| *t < answered && *s == 200)
        .count();
    let after: Vec<u16> = log
        .iter()
        .filter(|(t, _)| *t > answered)
        .map(|(_, s)| *s)
        .collect();
    assert!(
        before > 10,
        "the old token worked before the refresh ({before} requests)"
    );
    assert!(!after.is_empty(), "requests were sent after the refresh");
    assert!(
        after.iter().all(|s| *s == 401),
        "a request sent after the refresh answer succeeded: {:?}",
        after.iter().filter(|s| **s != 401).count()
    );
    let new_token = refreshed["auth_token"].as_str().unwrap();
    for other in [&b, &c] {
        send(
            other.data,
            "GET",
            "/api/ping",
            &[("api-token", new_token)],
            "",
        )
        .await
        .assert_status(200);
    }
}

/// A TCP proxy to PostgreSQL that can be cut (every connection closed, new ones refused) and
/// restored.
struct Cuttable {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
}

impl Cuttable {
    async fn start(target: SocketAddr) -> Cuttable {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let flag = open.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !flag.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                    let watch = async {
                        while flag.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! { _ = copy => {}, _ = watch => {} }
                });
            }
        });
        Cuttable { addr, open }
    }

    fn set(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_database_serves_from_memory_then_catches_up() {
    let Some(url) = fresh_database("cut_off").await else {
        return;
    };
    // The node under test reaches PostgreSQL through a proxy the test can cut.
    let rest = url.split_once("://").unwrap().1;
    let (userinfo_host, database) = rest.split_once('/').unwrap();
    let (userinfo, host) = match userinfo_host.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), userinfo_host),
    };
    let target: SocketAddr = tokio::net::lookup_host(if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    })
    .await
    .unwrap()
    .next()
    .unwrap();
    let proxy = Cuttable::start(target).await;
    let proxied = format!("postgres://{userinfo}{}/{database}", proxy.addr);

    let dirs = [TempDir::new(), TempDir::new()];
    let a = node(&url, &dirs[0], &[]).await;
    let b = node(&proxied, &dirs[1], &["--max-staleness-s", "3"]).await;
    let api = a.admin.collection("api", json!([ping("/ping")])).await;
    let old = a
        .admin
        .access(
            "Acme",
            json!({"collections": [api.clone()], "auth": {"type": "token"}}),
        )
        .await;
    wait_for(b.data, &old.token, 200, Duration::from_secs(2)).await;

    proxy.set(false);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Serving from memory; writes through B are refused and not applied.
    wait_for(b.data, &old.token, 200, Duration::from_secs(1)).await;
    let (status, body) = b
        .admin
        .try_call("POST", "/v1/clients", Some(&json!({"name": "through B"})))
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 503, "{body}");
    assert_eq!(body["error"], "store_unavailable", "{body}");
    // A change through A meanwhile.
    let new = a
        .admin
        .access(
            "Globex",
            json!({"collections": [api], "auth": {"type": "token"}}),
        )
        .await;
    // Past --max-staleness-s: B refuses rather than serve possibly revoked tokens.
    let reply = loop {
        let reply = send(b.data, "GET", "/api/ping", &[("api-token", &old.token)], "").await;
        if reply.status != 200 {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    reply.assert_error(503, "unavailable");
    let (status, _) = b.admin.try_call("GET", "/readyz", None).await.unwrap();
    assert_eq!(status.as_u16(), 503);

    proxy.set(true);
    // Back: B resynchronizes (the change made through A arrives) and serves again.
    let took = wait_for(b.data, &new.token, 200, Duration::from_secs(5)).await;
    eprintln!("the node caught up {took:?} after the database came back");
    send(b.data, "GET", "/api/ping", &[("api-token", &old.token)], "")
        .await
        .assert_status(200);
    let (status, _) = b.admin.try_call("GET", "/readyz", None).await.unwrap();
    assert_eq!(status.as_u16(), 200);
    let names = query_text(&url, "SELECT body FROM tokengate_clients").await;
    assert!(!names.iter().any(|b| b.contains("through B")), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_at_once_migrate_once_and_kill_9_loses_no_acknowledged_change() {
    let Some(url) = fresh_database("migrate_once").await else {
        return;
    };
    let dirs = [TempDir::new(), TempDir::new()];
    let (mut a, b) = tokio::join!(node(&url, &dirs[0], &[]), node(&url, &dirs[1], &[]));
    assert_eq!(
        query_text(&url, "SELECT count(*) FROM tokengate_schema").await,
        ["1"]
    );

    let api = a.admin.collection("api", json!([ping("/ping")])).await;
    // Profiles through A (a new client every 10), one after another, until A is killed.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let writer = {
        let admin = crate::support::gateway::AdminClient { addr: a.admin.addr };
        let acknowledged = acknowledged.clone();
        let api = api.clone();
        tokio::spawn(async move {
            let mut client = String::new();
            for n in 0..100_000 {
                if n % 10 == 0 {
                    let body = json!({"name": format!("c{n}")});
                    match admin.try_call("POST", "/v1/clients", Some(&body)).await {
                        Ok((status, answer)) if status == 201 => {
                            client = answer["id"].as_str().unwrap().to_owned()
                        }
                        _ => return,
                    }
                }
                let body = json!({"name": format!("p{n}"), "collections": [api], "auth": {"type": "token"}});
                match admin
                    .try_call(
                        "POST",
                        &format!("/v1/clients/{client}/profiles"),
                        Some(&body),
                    )
                    .await
                {
                    Ok((status, answer)) if status == 201 => acknowledged
                        .lock()
                        .unwrap()
                        .push(answer["auth_token"].as_str().unwrap().to_owned()),
                    _ => return,
                }
            }
        })
    };
    while acknowledged.lock().unwrap().len() < 30 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    a.kill();
    writer.await.unwrap();
    let tokens = acknowledged.lock().unwrap().clone();
    for token in &tokens {
        wait_for(b.data, token, 200, Duration::from_secs(2)).await;
    }
}
