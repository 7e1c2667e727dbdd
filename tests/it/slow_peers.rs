//! Slow peers over real sockets, with short timeouts: a client that stalls mid-body gets 408 (or
//! its connection closed), an upstream that stalls mid-response-body has the client's stream
//! closed, and in both cases the open-connection gauge returns to zero; an upstream slower than
//! the header-read timeout still answers, and the connection then idles out on time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use tokengate::app::ServeConfig;

use crate::support::gateway::{forward, Access, Gateway};
use crate::support::upstream::Upstream;
use crate::support::wire::{closed_within, connect_and_write, read_response};

const TIMEOUT: Duration = Duration::from_secs(1);

async fn gateway_to(upstream_url: &str) -> (Gateway, Access) {
    gateway_with(upstream_url, |_| {}).await
}

/// [`gateway_to`] with more settings changed by `configure`.
async fn gateway_with(
    upstream_url: &str,
    configure: impl FnOnce(&mut ServeConfig),
) -> (Gateway, Access) {
    let gateway = Gateway::start_with(|config| {
        config.door_limits.client_body_timeout = TIMEOUT;
        config.door_limits.upstream_read_timeout = TIMEOUT;
        configure(config);
    })
    .await;
    let collection = gateway
        .admin
        .collection(
            "slow",
            json!([
                forward("POST", "/upload", upstream_url),
                forward("GET", "/download", upstream_url),
            ]),
        )
        .await;
    let access = gateway
        .admin
        .access(
            "Slow client",
            json!({"name": "slow", "collections": [collection], "auth": {"type": "token"}}),
        )
        .await;
    (gateway, access)
}

/// Polls `tokengate_open_connections` until it is `want` (within 5 s).
async fn open_connections_become(gateway: &Gateway, want: u64) {
    let started = Instant::now();
    loop {
        let open = gateway.admin.metric("tokengate_open_connections").await;
        if open == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "open connections stayed at {open}, wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_client_that_stalls_mid_body_gets_408() {
    let upstream = Upstream::echo().await;
    let (gateway, access) = gateway_to(&upstream.url("/")).await;
    let head = format!(
        "POST /slow/upload HTTP/1.1\r\nhost: x\r\napi-token: {}\r\ncontent-length: 1000\r\n\r\n",
        access.token
    );
    let mut stream = connect_and_write(gateway.data, head.as_bytes()).await;
    stream.write_all(&[b'a'; 10]).await.unwrap();
    let started = Instant::now();
    let reply = read_response(&mut stream).await;
    let waited = started.elapsed();
    assert_eq!(reply.status, 408, "{}", reply.head);
    assert_eq!(reply.json()["error"], "request_timeout");
    assert!(waited >= TIMEOUT - Duration::from_millis(100), "{waited:?}");
    assert!(waited < TIMEOUT * 5, "{waited:?}");
    // The connection is closed after a body that was never finished.
    closed_within(&mut stream, Duration::from_secs(5)).await;
    drop(stream);
    open_connections_become(&gateway, 0).await;
    // The front door still serves.
    let ok = gateway
        .call(
            "GET",
            "/slow/download",
            &[("api-token", access.token.as_str())],
        )
        .await;
    ok.assert_status(200);
}

/// An upstream that sends a response head and the first bytes of a longer body, then nothing.
async fn stalling_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if !read_request_head(&mut stream).await {
                    return;
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\nfirst bytes")
                    .await;
                // Hold the connection open without sending more.
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_upstream_that_stalls_mid_body_has_the_stream_closed() {
    let upstream = stalling_upstream().await;
    let (gateway, access) = gateway_to(&format!("http://{upstream}")).await;
    let head = format!(
        "GET /slow/download HTTP/1.1\r\nhost: x\r\napi-token: {}\r\n\r\n",
        access.token
    );
    let mut stream = connect_and_write(gateway.data, head.as_bytes()).await;
    let started = Instant::now();
    // The head and the first bytes arrive, then the stream is cut before 100 000 bytes.
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the stalled stream was not closed within 10 s"),
        }
    }
    let waited = started.elapsed();
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("first bytes"), "{text}");
    assert!(waited >= TIMEOUT - Duration::from_millis(100), "{waited:?}");
    assert!(waited < TIMEOUT * 5, "{waited:?}");
    drop(stream);
    open_connections_become(&gateway, 0).await;
}

/// An upstream that answers with an endless body (256 MiB declared) as fast as it can be taken;
/// `ended` turns true once its writes fail (the front door let go of it).
async fn flooding_upstream(ended: std::sync::Arc<std::sync::atomic::AtomicBool>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let ended = ended.clone();
            tokio::spawn(async move {
                if !read_request_head(&mut stream).await {
                    return;
                }
                let head = b"HTTP/1.1 200 OK\r\ncontent-length: 268435456\r\n\r\n";
                if stream.write_all(head).await.is_err() {
                    return;
                }
                let chunk = vec![b'z'; 64 * 1024];
                for _ in 0..4096 {
                    if stream.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
                ended.store(true, std::sync::atomic::Ordering::SeqCst);
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_by_the_send_timeout() {
    let ended = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let upstream = flooding_upstream(ended.clone()).await;
    let gateway = Gateway::start_with(|config| {
        config.server_limits.send_timeout = TIMEOUT;
        config.door_limits.upstream_read_timeout = Duration::from_secs(30);
    })
    .await;
    let collection = gateway
        .admin
        .collection(
            "flood",
            json!([forward("GET", "/download", &format!("http://{upstream}"))]),
        )
        .await;
    let access = gateway
        .admin
        .access(
            "Slow reader",
            json!({"name": "reader", "collections": [collection], "auth": {"type": "token"}}),
        )
        .await;
    let head = format!(
        "GET /flood/download HTTP/1.1\r\nhost: x\r\napi-token: {}\r\n\r\n",
        access.token
    );
    // Send the request, then never read: the socket buffers fill and the front door's writes stall.
    let stream = connect_and_write(gateway.data, head.as_bytes()).await;
    open_connections_become(&gateway, 1).await;
    let started = Instant::now();
    open_connections_become(&gateway, 0).await;
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // The upstream stream feeding it was let go too.
    let released = Instant::now();
    while !ended.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(
            released.elapsed() < Duration::from_secs(5),
            "the upstream was never released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(stream);
}

/// An upstream that waits `delay` after each request head, then answers `200 slow`.
async fn late_upstream(delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if !read_request_head(&mut stream).await {
                    return;
                }
                tokio::time::sleep(delay).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nslow")
                    .await;
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    addr
}

/// The header-read timeout does not run while a request is in flight: an upstream slower than
/// it still answers, and the keep-alive connection then gets the whole timeout again before it
/// is closed for idling.
#[tokio::test]
async fn a_request_slower_than_the_header_timeout_is_answered_then_the_connection_idles_out() {
    let upstream = late_upstream(Duration::from_millis(1_600)).await;
    let (gateway, access) = gateway_with(&format!("http://{upstream}"), |config| {
        config.server_limits.header_read_timeout = TIMEOUT;
    })
    .await;
    let head = format!(
        "GET /slow/download HTTP/1.1\r\nhost: x\r\napi-token: {}\r\n\r\n",
        access.token
    );
    let mut stream = connect_and_write(gateway.data, head.as_bytes()).await;
    let response = read_response(&mut stream).await;
    assert_eq!(response.status, 200, "{}", response.head);
    assert!(
        !response
            .head
            .to_ascii_lowercase()
            .contains("connection: close"),
        "{}",
        response.head
    );
    let idle = closed_within(&mut stream, Duration::from_secs(4)).await;
    assert!(
        idle >= TIMEOUT - Duration::from_millis(100),
        "closed too early after the response: {idle:?}"
    );
    assert!(idle < TIMEOUT * 3, "closed late: {idle:?}");
}

/// Reads from `stream` until a request head has ended (`\r\n\r\n`); false if the peer closed
/// or failed first.
async fn read_request_head(stream: &mut tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    true
}
