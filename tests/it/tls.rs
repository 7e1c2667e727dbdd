//! TLS on both sides, through the real binary: an HTTPS data plane and admin API (curl with
//! `--cacert`), certificate reload on SIGHUP under load, a plain-HTTP request or a silent client
//! on the TLS port, HTTPS upstreams behind a private CA, and an upstream certificate that names
//! another host.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::gateway::{forward, ping};
use crate::support::process::Served;
use crate::support::tls::{
    client_config, client_config_for, connect, get, http1, peer_certificate, write_atomically,
    HttpsUpstream, TestCa,
};
use crate::support::upstream::Upstream;
use crate::support::TempDir;

/// Whether curl is here; in CI a missing curl is a failure.
fn have_curl(test: &str) -> bool {
    let found = Command::new("curl").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "{test}: curl is missing in CI"
        );
        eprintln!("SKIPPED {test}: curl is not installed");
    }
    found
}

/// Runs curl with `args` off the test's runtime (which serves the test upstreams); (exit
/// code, stdout, stderr).
async fn curl(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(&args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// The server's log once a line satisfies `wanted` (or after 5 s): its stderr is read by a
/// thread, so a line can lag the answer that caused it.
async fn log_with(served: &Served, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = served.log();
        if log.lines().any(&wanted) || Instant::now() > deadline {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates collection `shop` with `endpoints` and a client whose token profile grants it;
/// returns the auth token.
async fn shop_token(served: &Served, endpoints: Value) -> String {
    let collection = served.admin.collection("shop", endpoints).await;
    served
        .admin
        .access(
            "Acme",
            json!({"collections": [collection], "auth": {"type": "token"}}),
        )
        .await
        .token
}

#[tokio::test]
async fn https_listeners_answer_curl_with_the_private_ca() {
    if !have_curl("https_listeners") {
        return;
    }
    let dir = TempDir::new();
    let ca = TestCa::new("tokengate test CA");
    let (cert, key) = ca
        .leaf(&["localhost", "127.0.0.1"], "data")
        .write(dir.path(), "data");
    let (admin_cert, admin_key) = ca.leaf(&["127.0.0.1"], "admin").write(dir.path(), "admin");
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let ca_file = dir.path().join("ca.pem");
    let ca_file = ca_file.to_str().unwrap();
    let echo = Upstream::echo().await;
    let data_dir = TempDir::new();
    let served = Served::spawn(
        data_dir.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    )
    .await;
    let token = shop_token(
        &served,
        json!([
            ping("/ping"),
            forward("GET", "/echo", &format!("http://{}", echo.addr))
        ]),
    )
    .await;
    let base = format!("https://localhost:{}", served.data.port());
    let resolve = format!("localhost:{}:127.0.0.1", served.data.port());
    let token = format!("API-Token: {token}");

    // curl verifies the chain against the CA and negotiates http/1.1 by ALPN.
    let (code, body, err) = curl(&[
        "--cacert",
        ca_file,
        "--resolve",
        &resolve,
        "-v",
        "-H",
        &token,
        &format!("{base}/shop/ping"),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(body, r#"{"pong":true}"#);
    assert!(err.contains("ALPN: server accepted http/1.1"), "{err}");
    // Without the CA, curl refuses the certificate.
    let (code, _, _) = curl(&["--resolve", &resolve, &format!("{base}/shop/ping")]).await;
    assert_eq!(code, 60, "an unknown issuer is refused by curl");
    // The upstream learns that the client came over HTTPS.
    let (code, body, err) = curl(&[
        "--cacert",
        ca_file,
        "--resolve",
        &resolve,
        "-H",
        &token,
        &format!("{base}/shop/echo"),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let echoed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed["headers"]["x-forwarded-proto"], json!(["https"]));
    // Portal URLs follow the scheme.
    let clients = served.admin.expect(200, "GET", "/v1/clients", None).await;
    let url = clients["items"][0]["portal_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!(
            "https://127.0.0.1:{}/_tokengate/portal/",
            served.data.port()
        )),
        "{url}"
    );
    drop(served);

    // The admin API over HTTPS too.
    let data_dir = TempDir::new();
    let served = Served::spawn(
        data_dir.path(),
        &[
            "--admin-tls-cert",
            admin_cert.to_str().unwrap(),
            "--admin-tls-key",
            admin_key.to_str().unwrap(),
        ],
    )
    .await;
    let admin = format!("https://127.0.0.1:{}", served.admin.addr.port());
    let (code, body, err) = curl(&["--cacert", ca_file, &format!("{admin}/healthz")]).await;
    assert_eq!(code, 0, "{err}");
    assert!(body.contains("ok"), "{body}");
    let (code, _, _) = curl(&[&format!(
        "http://127.0.0.1:{}/healthz",
        served.admin.addr.port()
    )])
    .await;
    // The CLI reaches it too, trusting the CA given in TOKENGATE_ADMIN_CA_FILE.
    let admin_url = admin.clone();
    let cli = move |ca: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tokengate"));
        command
            .args(["client", "list", "--admin-url", &admin_url])
            .env("TOKENGATE_ADMIN_KEY", crate::support::ADMIN_KEY)
            .env_remove("TOKENGATE_ADMIN_CA_FILE");
        if let Some(ca) = ca {
            command.env("TOKENGATE_ADMIN_CA_FILE", ca);
        }
        command.output().unwrap()
    };
    let listed = tokio::task::spawn_blocking({
        let cli = cli.clone();
        let ca = ca_file.to_owned();
        move || cli(Some(&ca))
    })
    .await
    .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("\"items\""));
    let refused = tokio::task::spawn_blocking(move || cli(None))
        .await
        .unwrap();
    assert!(!refused.status.success(), "an unknown issuer is refused");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert_ne!(code, 0, "plain HTTP to the admin TLS port gets no answer");
}

#[tokio::test]
async fn plain_http_and_silent_clients_on_the_tls_port_are_closed() {
    let dir = TempDir::new();
    let ca = TestCa::new("ca");
    let (cert, key) = ca.leaf(&["127.0.0.1"], "data").write(dir.path(), "data");
    let data_dir = TempDir::new();
    let served = Served::spawn(
        data_dir.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--header-read-timeout-s",
            "1",
        ],
    )
    .await;
    // A plain-HTTP request: the handshake fails and the connection is closed at once.
    let started = Instant::now();
    let mut tcp = TcpStream::connect(served.data).await.unwrap();
    tcp.write_all(b"GET /shop/ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("closed, not left hanging");
    if let Ok(n) = read {
        assert!(
            !buf[..n].starts_with(b"HTTP/"),
            "no HTTP answer on the TLS port"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(2), "closed at once");
    // A client that connects and says nothing: cut off by the header read timeout (1 s).
    let started = Instant::now();
    let mut tcp = TcpStream::connect(served.data).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("a stalled handshake is cut off");
    assert!(matches!(read, Ok(0) | Err(_)));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // A real TLS client still works, over TLS 1.3 and over TLS 1.2.
    let config = client_config(&[&ca.pem()]);
    let stream = connect(served.data, &config, "127.0.0.1").await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let tls12 = client_config_for(&[&ca.pem()], &[&rustls::version::TLS12]);
    let stream = connect(served.data, &tls12, "127.0.0.1").await.unwrap();
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

#[tokio::test]
async fn sighup_reloads_the_certificate_under_load_without_a_failed_request() {
    let dir = TempDir::new();
    let ca = TestCa::new("ca");
    let first = ca.leaf(&["127.0.0.1"], "first");
    let second = ca.leaf(&["127.0.0.1"], "second");
    let (cert, key) = first.write(dir.path(), "data");
    let data_dir = TempDir::new();
    let served = Served::spawn(
        data_dir.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    )
    .await;
    let token = shop_token(&served, json!([ping("/ping")])).await;
    let config = client_config(&[&ca.pem()]);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut workers = Vec::new();
    for worker in 0..6 {
        let (config, stop, ok, failed) = (config.clone(), stop.clone(), ok.clone(), failed.clone());
        let (addr, token) = (served.data, token.clone());
        workers.push(tokio::spawn(async move {
            // Half the workers keep one connection; half open a new one for every 5 requests.
            let per_connection = if worker % 2 == 0 { usize::MAX } else { 5 };
            let mut opened = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let stream = match connect(addr, &config, "127.0.0.1").await {
                    Ok(stream) => stream,
                    Err(e) => {
                        eprintln!("handshake failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                opened.push(peer_certificate(&stream));
                let Ok(mut sender) = http1(stream).await else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let mut sent = 0;
                while sent < per_connection && !stop.load(Ordering::Relaxed) {
                    match get(&mut sender, "/shop/ping", &[("api-token", &token)]).await {
                        Ok((status, _)) if status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        other => {
                            eprintln!("request failed: {other:?}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    sent += 1;
                }
            }
            opened
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    second.write(dir.path(), "data");
    let hup = |pid: u32| {
        assert!(Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success());
    };
    hup(served.pid());
    tokio::time::sleep(Duration::from_millis(700)).await;
    // A broken new file is refused: the second certificate stays, one clear line is logged.
    write_atomically(
        &cert,
        b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    );
    hup(served.pid());
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for worker in workers {
        seen.extend(worker.await.unwrap());
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!(
        "reload under load: {ok} requests succeeded, {failed} failed, {} handshakes",
        seen.len()
    );
    assert_eq!(failed, 0, "no request fails across a reload");
    assert!(ok > 200, "the load was real: {ok}");
    assert!(
        seen.contains(&first.der),
        "handshakes before the reload got the first certificate"
    );
    assert!(
        seen.contains(&second.der),
        "handshakes after the reload got the second:\n{}",
        served.log()
    );
    let last = connect(served.data, &config, "127.0.0.1").await.unwrap();
    assert_eq!(
        peer_certificate(&last),
        second.der,
        "a bad file keeps the current certificate"
    );
    let log = log_with(&served, |l| l.contains("NOT reloaded")).await;
    assert!(log.contains("TLS certificate reloaded"), "{log}");
    let refused: Vec<&str> = log.lines().filter(|l| l.contains("NOT reloaded")).collect();
    assert_eq!(refused.len(), 1, "one line for the bad file:\n{log}");
    assert!(refused[0].contains("data.crt"), "{}", refused[0]);
}

#[tokio::test]
async fn https_upstreams_behind_a_private_ca_and_a_wrong_name() {
    let dir = TempDir::new();
    let ca = TestCa::new("private upstream CA");
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let ca_file = dir.path().join("ca.pem");
    let good = HttpsUpstream::start(&ca.leaf(&["localhost"], "upstream")).await;
    let wrong = HttpsUpstream::start(&ca.leaf(&["other.example"], "other")).await;
    let data_dir = TempDir::new();
    let served = Served::spawn(
        data_dir.path(),
        &["--upstream-ca-file", ca_file.to_str().unwrap()],
    )
    .await;
    let token = shop_token(
        &served,
        json!([
            forward(
                "GET",
                "/good",
                &format!("https://localhost:{}/v1", good.addr.port())
            ),
            forward(
                "GET",
                "/wrong",
                &format!("https://127.0.0.1:{}/v1", wrong.addr.port())
            ),
        ]),
    )
    .await;
    let call = |path: &'static str| {
        let (addr, token) = (served.data, token.clone());
        async move { crate::support::send(addr, "GET", path, &[("api-token", &token)], "").await }
    };
    for _ in 0..3 {
        let reply = call("/shop/good").await;
        reply.assert_status(200);
        let body = reply.json();
        assert_eq!(body["uri"], "/v1/good");
        assert_eq!(body["sni"], "localhost", "SNI is the upstream URL's host");
        assert_eq!(body["x_forwarded_proto"], "http");
    }
    assert_eq!(
        good.handshakes.load(Ordering::SeqCst),
        1,
        "upstream TLS connections are pooled"
    );
    let reply = call("/shop/wrong").await;
    reply.assert_error(502, "bad_gateway");
    assert_eq!(
        reply.json()["message"],
        "The upstream service's TLS certificate could not be verified."
    );
    // The server's stderr reaches the test through a reader thread: wait for the line.
    let log = log_with(&served, |l| {
        l.contains("upstream TLS certificate refused") && l.to_lowercase().contains("name")
    })
    .await;
    assert!(
        log.lines()
            .any(|l| l.contains("upstream TLS certificate refused")
                && l.to_lowercase().contains("name")),
        "the operator log says why:\n{log}"
    );
    drop(served);

    // Without --upstream-ca-file the private CA is not trusted: 502, never a bypass.
    let data_dir = TempDir::new();
    let served = Served::spawn(data_dir.path(), &[]).await;
    let token = shop_token(
        &served,
        json!([forward(
            "GET",
            "/good",
            &format!("https://localhost:{}/v1", good.addr.port())
        )]),
    )
    .await;
    crate::support::send(
        served.data,
        "GET",
        "/shop/good",
        &[("api-token", &token)],
        "",
    )
    .await
    .assert_error(502, "bad_gateway");
    // A CA file that is not PEM stops the start with a clear message.
    std::fs::write(dir.path().join("bad.pem"), "hello").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(TempDir::new().path())
        .arg("--upstream-ca-file")
        .arg(dir.path().join("bad.pem"))
        .env("TOKENGATE_ADMIN_KEY", crate::support::ADMIN_KEY)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--upstream-ca-file") && err.contains("bad.pem"),
        "{err}"
    );
    let _ = good.sni;
}
