//! The real binary as an operator meets it: one server per data directory (a lock naming the
//! holder), a data dir that is a file, a short admin key, logs without ANSI codes, JSON logs,
//! the access log, refusals logged, and `--demo` on a store that already has data.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::gateway::{ping, AdminClient};
use crate::support::process::Served;
use crate::support::{send, TempDir, ADMIN_KEY};

const BIN: &str = env!("CARGO_BIN_EXE_tokengate");

/// Runs `tokengate serve` on free ports over `data_dir` with `extra` flags and `admin_key`,
/// expecting it to exit by itself (within 20 s).
fn serve_once(data_dir: &Path, admin_key: &str, extra: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("TOKENGATE_ADMIN_KEY", admin_key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "tokengate serve did not exit: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn a_second_server_on_one_data_dir_exits_naming_the_holder() {
    let dir = TempDir::new();
    let first = Served::spawn(dir.path(), &[]).await;
    let out = serve_once(dir.path(), ADMIN_KEY, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
    assert!(err.contains(&format!("pid {}", first.pid())), "{err}");
    // The first server is unharmed.
    let health = send(first.admin.addr, "GET", "/healthz", &[], "").await;
    health.assert_status(200);
    drop(first);
    // Once it is gone (even killed), the directory can be served again.
    let again = Served::spawn(dir.path(), &[]).await;
    drop(again);
}

#[test]
fn a_data_dir_that_is_a_file_and_a_short_admin_key_are_refused() {
    let dir = TempDir::new();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let out = serve_once(&file, ADMIN_KEY, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("is a file, not a directory"), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"x", "the file is untouched");

    let short = "only-31-characters-long-0123456";
    assert_eq!(short.len(), 31);
    let out = serve_once(&dir.path().join("data"), short, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("TOKENGATE_ADMIN_KEY is 31 characters"),
        "{err}"
    );
    assert!(err.contains("at least 32"), "{err}");
    assert!(!err.contains(short), "the key is not echoed: {err}");
}

/// `serve_to_files_with_log_filter` at the default log level.
async fn serve_to_files(
    dir: &Path,
    extra: &[&str],
) -> (std::process::Child, std::net::SocketAddr, AdminClient) {
    serve_to_files_with_log_filter(dir, extra, None).await
}

/// Starts the binary with stderr and the access log going to files (so stderr is not a
/// terminal and no NO_COLOR is set) and `TOKENGATE_LOG` set to `filter` (unset for `None`),
/// waits until it serves, and returns the admin and data addresses with the child.
// The child is handed to the caller, which kills and waits for it.
#[allow(clippy::zombie_processes)]
async fn serve_to_files_with_log_filter(
    dir: &Path,
    extra: &[&str],
    filter: Option<&str>,
) -> (std::process::Child, std::net::SocketAddr, AdminClient) {
    let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
    let mut command = Command::new(BIN);
    command.env_remove("TOKENGATE_LOG");
    if let Some(filter) = filter {
        command.env("TOKENGATE_LOG", filter);
    }
    let mut child = command
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(extra)
        .env("TOKENGATE_ADMIN_KEY", ADMIN_KEY)
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
        let find = |name: &str| {
            text.split(name)
                .nth(1)?
                .split([' ', '"', ',', '}'])
                .next()?
                .parse()
                .ok()
        };
        if let (Some(data), Some(admin)) = (find("data_plane="), find("admin=")) {
            return (child, data, AdminClient { addr: admin });
        }
        if let (Some(data), Some(admin)) = (find("\"data_plane\":\""), find("\"admin\":\"")) {
            return (child, data, AdminClient { addr: admin });
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("did not start: {text}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the server wrote to stderr around one refused request, with `TOKENGATE_LOG` = `filter`.
async fn log_of_one_refusal(filter: Option<&str>) -> String {
    let dir = TempDir::new();
    let (mut child, data, _admin) = serve_to_files_with_log_filter(dir.path(), &[], filter).await;
    send(data, "GET", "/nowhere", &[("api-token", "garbage")], "")
        .await
        .assert_error(401, "invalid_token");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = child.kill();
    let _ = child.wait();
    std::fs::read_to_string(dir.path().join("stderr.log")).unwrap()
}

#[tokio::test]
async fn logs_to_a_file_carry_no_ansi_codes_and_refusals_are_debug_lines() {
    // At the default level a refused request writes nothing to stderr: a flood of bad tokens
    // must not cost a log write each (the metrics and the access log count them).
    let text = log_of_one_refusal(None).await;
    assert!(
        !text.contains('\u{1b}'),
        "ANSI codes in a log file:\n{text}"
    );
    assert!(text.contains("tokengate is serving"), "{text}");
    assert!(
        !text.contains("request refused"),
        "a refusal logged at the default level:\n{text}"
    );

    // With the data plane's service at debug each refusal is one line, without the credential.
    let text = log_of_one_refusal(Some("info,tokengate::door::service=debug")).await;
    let refused = text
        .lines()
        .find(|l| l.contains("request refused"))
        .unwrap_or_else(|| panic!("no refusal line at debug:\n{text}"));
    assert!(refused.contains("invalid_token"), "{refused}");
    assert!(refused.contains("DEBUG"), "{refused}");
    assert!(refused.contains("path=/nowhere"), "{refused}");
    assert!(!text.contains("garbage"), "the credential leaked:\n{text}");
}

#[tokio::test]
async fn json_logs_and_the_access_log() {
    let dir = TempDir::new();
    let access = dir.path().join("access.log");
    let (mut child, data, admin) = serve_to_files(
        dir.path(),
        &[
            "--log-format",
            "json",
            "--access-log",
            access.to_str().unwrap(),
        ],
    )
    .await;
    let collection = admin.collection("shop", json!([ping("/ping")])).await;
    let granted = admin
        .access(
            "Logged client",
            json!({"name": "logged", "collections": [collection], "auth": {"type": "token"}}),
        )
        .await;
    send(
        data,
        "GET",
        "/shop/ping?secret=q",
        &[("api-token", &granted.token)],
        "",
    )
    .await
    .assert_status(200);
    send(
        data,
        "GET",
        "/shop/%2e/ping",
        &[("api-token", "not-a-token")],
        "",
    )
    .await
    .assert_error(401, "invalid_token");
    send(data, "GET", "/shop/a%2Fb", &[], "")
        .await
        .assert_error(400, "invalid_request");
    // The writer flushes whenever its queue runs empty.
    let started = std::time::Instant::now();
    let lines: Vec<Value> = loop {
        let text = std::fs::read_to_string(&access).unwrap_or_default();
        if text.lines().count() >= 3 || started.elapsed() > Duration::from_secs(10) {
            assert!(!text.contains(&granted.token), "a token in the access log");
            assert!(
                !text.contains("not-a-token"),
                "a credential in the access log"
            );
            assert!(!text.contains("secret=q"), "a query in the access log");
            break text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(lines.len(), 3, "{lines:?}");
    let ok = &lines[0];
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["path"], "/shop/ping");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["peer"], "127.0.0.1");
    assert_eq!(ok["client_id"], granted.client_id.as_str());
    assert_eq!(ok["profile_id"], granted.profile_id.as_str());
    assert_eq!(ok["auth"], "token");
    assert!(ok.get("error").is_none());
    assert!(ok["duration_s"].as_f64().unwrap() >= 0.0);
    assert!(ok["time"].as_str().unwrap().ends_with('Z'));
    let refused = &lines[1];
    assert_eq!(refused["status"], 401);
    assert_eq!(refused["error"], "invalid_token");
    assert_eq!(
        refused["path"], "/shop/ping",
        "the normalized path is logged"
    );
    assert!(refused.get("client_id").is_none());
    let bad = &lines[2];
    assert_eq!(bad["status"], 400);
    assert_eq!(bad["error"], "invalid_request");

    let text = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    for line in text.lines() {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not a JSON log line: {line}");
    }
    assert!(
        text.contains("\"message\":\"tokengate is serving\""),
        "{text}"
    );
}

#[tokio::test]
async fn demo_on_a_store_with_data_says_it_seeded_nothing() {
    let dir = TempDir::new();
    {
        let served = Served::spawn(dir.path(), &[]).await;
        served.admin.client("Existing").await;
    }
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--demo")
        .env("TOKENGATE_ADMIN_KEY", ADMIN_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout).lines().next()
    })
    .await
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("a line").unwrap();
    assert!(line.contains("seeded nothing"), "{line}");
    assert!(line.contains("already holds"), "{line}");
}
