//! The command line end to end: the real `tokengate` binary driving a real `tokengate serve`
//! child process over loopback (admin commands, `jwt sign`, errors, `--help`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::TempDir;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use tokengate::core::keys::RsaPublicKey;

const BIN: &str = env!("CARGO_BIN_EXE_tokengate");
const ADMIN_KEY: &str = "cli-test-admin-key-5b1f0c9e7d3a-0123";
const HELLO: &str = r#"GET /hello {"status":200,"body":{"ok":true}}"#;

fn interop(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/jwt-interop")
        .join(name)
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// One raw HTTP/1.1 request on a fresh connection; returns (status, body text).
fn http(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A `tokengate serve` child on free loopback ports over a temporary data directory; killed on
/// drop (also when a test panics).
struct Server {
    child: Child,
    data: SocketAddr,
    admin: SocketAddr,
    dir: TempDir,
}

impl Server {
    fn start() -> Server {
        Self::start_seeded(None)
    }

    /// Starts over a data directory whose store already holds `state`.
    fn start_seeded(state: Option<&tokengate::core::model::State>) -> Server {
        let dir = TempDir::new();
        if let Some(state) = state {
            crate::support::write_state(&dir.path().join("data"), state);
        }
        for _ in 0..5 {
            let (data, admin) = (free_addr(), free_addr());
            let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
            let mut child = Command::new(BIN)
                .args(["serve", "--listen", &data.to_string()])
                .args(["--admin-listen", &admin.to_string()])
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .args(["--threads", "1", "--cache-capacity", "1000"])
                .env("TOKENGATE_ADMIN_KEY", ADMIN_KEY)
                .env("TOKENGATE_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if child.try_wait().unwrap().is_some() {
                    break; // a port was taken in between: try others
                }
                if TcpStream::connect(admin).is_ok() && http(admin, "/healthz", &[]).0 == 200 {
                    return Server {
                        child,
                        data,
                        admin,
                        dir,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "tokengate serve did not come up: {}",
                        std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!(
            "tokengate serve kept exiting: {}",
            std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
        );
    }

    fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// Runs the CLI against this server with the admin key in the environment.
    fn tg(&self, args: &[&str]) -> Output {
        tg_with(args, |cmd| {
            cmd.env("TOKENGATE_ADMIN_URL", self.admin_url())
                .env("TOKENGATE_ADMIN_KEY", ADMIN_KEY);
        })
    }

    /// Runs the CLI, asserts exit 0 and returns stdout as JSON.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.tg(args);
        let stdout = ok(&out, args);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
    }

    /// Runs the CLI, asserts exit 0 and returns stdout as one trimmed line.
    fn line(&self, args: &[&str]) -> String {
        let out = self.tg(args);
        let stdout = ok(&out, args);
        assert_eq!(stdout.lines().count(), 1, "{args:?}: {stdout:?}");
        stdout.trim().to_owned()
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        http(self.data, path, headers)
    }

    /// Creates a collection `path` with GET /hello, and a client; returns their ids.
    fn collection_and_client(&self, path: &str) -> (String, String) {
        let collection = self.json(&[
            "collection",
            "create",
            "--name",
            "Demo",
            "--path",
            path,
            "--endpoint",
            HELLO,
        ]);
        let client = self.json(&["client", "create", "--name", "Acme"]);
        (id_of(&collection), id_of(&client))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary with `args`, letting `setup` add environment; the admin key and URL
/// variables of the test process are removed first.
fn tg_with(args: &[&str], setup: impl FnOnce(&mut Command)) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("TOKENGATE_ADMIN_KEY")
        .env_remove("TOKENGATE_ADMIN_URL")
        .stdin(Stdio::null());
    setup(&mut cmd);
    let out = cmd.output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(ADMIN_KEY), "{args:?} printed the admin key");
    out
}

fn tg(args: &[&str]) -> Output {
    tg_with(args, |_| {})
}

fn ok(out: &Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "{args:?} exited {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn id_of(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_owned()
}

fn bearer(jwt: &str) -> String {
    format!("Bearer {jwt}")
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Decodes a JWT's header and payload.
fn decode(jwt: &str) -> (Value, Value) {
    let mut parts = jwt.split('.');
    let mut next = || -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap()
    };
    (next(), next())
}

#[test]
fn token_profile_lifecycle() {
    let server = Server::start();
    let (collection_id, client_id) = server.collection_and_client("demo");

    let collections = server.json(&["collection", "list"]);
    assert_eq!(collections["items"][0]["id"], collection_id.as_str());
    let collection = server.json(&["collection", "get", &collection_id]);
    assert_eq!(collection["endpoints"][0]["path"], "/hello");
    assert_eq!(
        server.json(&["client", "get", &client_id])["name"],
        json!("Acme")
    );
    assert_eq!(
        server.json(&["client", "list"])["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // A new portal key: the client comes back with a new portal_url.
    let before = server.json(&["client", "get", &client_id]);
    let rotated = server.json(&["client", "rotate-portal-key", &client_id]);
    assert_eq!(rotated["id"], before["id"]);
    assert_ne!(rotated["portal_key"], before["portal_key"]);
    assert!(rotated["portal_url"]
        .as_str()
        .unwrap()
        .ends_with(rotated["portal_key"].as_str().unwrap()));

    let token = server.line(&[
        "profile",
        "create",
        "--client",
        &client_id,
        "--name",
        "web",
        "--collection",
        &collection_id,
        "--token",
        "--token-only",
    ]);
    assert!(!token.contains('{'), "{token}");
    let (status, body) = server.get("/demo/hello", &[("API-Token", &token)]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ok\":true"), "{body}");

    let profiles = server.json(&["profile", "list", "--client", &client_id]);
    let profile_id = id_of(&profiles["items"][0]);
    let shown = server.tg(&["profile", "get", &profile_id]);
    let shown = ok(&shown, &["profile", "get"]);
    let view: Value = serde_json::from_str(&shown).unwrap();
    assert!(view["auth_token_masked"].is_string(), "{shown}");
    assert!(!shown.contains(&token), "profile get showed the token");
    assert!(view.get("auth_token").is_none());
    assert!(!ok(&server.tg(&["profile", "list"]), &[]).contains(&token));

    // Refresh: the old token stops, the new one works.
    let new_token = server.line(&["profile", "refresh", &profile_id, "--token-only"]);
    assert_ne!(new_token, token);
    let (status, body) = server.get("/demo/hello", &[("API-Token", &token)]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("invalid_token"), "{body}");
    assert_eq!(
        server.get("/demo/hello", &[("API-Token", &new_token)]).0,
        200
    );
    // Without --token-only: the whole answer, token included.
    let refreshed = server.json(&["profile", "refresh", &profile_id, "--grace-s", "60"]);
    let token = refreshed["auth_token"].as_str().unwrap().to_owned();
    assert!(refreshed["previous_token_valid_until_ms"].is_u64());
    assert_eq!(server.get("/demo/hello", &[("API-Token", &token)]).0, 200);
    assert_eq!(
        server.get("/demo/hello", &[("API-Token", &new_token)]).0,
        200,
        "the grace period keeps the previous token"
    );

    // Disable and enable, profile and client.
    assert_eq!(
        server.json(&["profile", "disable", &profile_id])["active"],
        false
    );
    assert_eq!(server.get("/demo/hello", &[("API-Token", &token)]).0, 401);
    server.json(&["profile", "enable", &profile_id]);
    assert_eq!(server.get("/demo/hello", &[("API-Token", &token)]).0, 200);
    assert_eq!(
        server.json(&["client", "disable", &client_id])["active"],
        false
    );
    assert_eq!(server.get("/demo/hello", &[("API-Token", &token)]).0, 401);
    server.json(&["client", "enable", &client_id]);
    assert_eq!(server.get("/demo/hello", &[("API-Token", &token)]).0, 200);

    // Patch from a file; put a collection from a file.
    let patch = server.dir.path().join("patch.json");
    std::fs::write(&patch, r#"{"name":"renamed"}"#).unwrap();
    let patched = server.json(&[
        "profile",
        "patch",
        &profile_id,
        "--file",
        patch.to_str().unwrap(),
    ]);
    assert_eq!(patched["name"], "renamed");
    let put = server.dir.path().join("collection.json");
    let mut replacement = collection.clone();
    replacement["endpoints"][0]["path"] = json!("/hi");
    std::fs::write(&put, replacement.to_string()).unwrap();
    let replaced = server.json(&[
        "collection",
        "put",
        &collection_id,
        "--file",
        put.to_str().unwrap(),
    ]);
    assert_eq!(replaced["endpoints"][0]["path"], "/hi");
    assert_eq!(server.get("/demo/hi", &[("API-Token", &token)]).0, 200);

    // The key may come from <data-dir>/admin.key instead of the environment.
    let key_dir = TempDir::new();
    std::fs::write(key_dir.path().join("admin.key"), format!("{ADMIN_KEY}\n")).unwrap();
    let out = tg_with(&["client", "list"], |cmd| {
        cmd.arg("--data-dir")
            .arg(key_dir.path())
            .args(["--admin-url", &server.admin_url()]);
    });
    assert!(ok(&out, &["client", "list", "--data-dir"]).contains(&client_id));

    // Deletes answer 204: nothing on stdout, exit 0; afterwards the id is unknown.
    let out = server.tg(&["profile", "delete", &profile_id]);
    assert_eq!(ok(&out, &["profile", "delete"]), "");
    let out = server.tg(&["profile", "get", &profile_id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: 404 not_found: "),
        "{}",
        stderr(&out)
    );
    assert_eq!(out.stdout, b"");
    for args in [
        ["collection", "delete", collection_id.as_str()],
        ["client", "delete", client_id.as_str()],
    ] {
        ok(&server.tg(&args), &args);
        let again = server.tg(&args);
        assert_eq!(again.status.code(), Some(1));
        assert!(stderr(&again).contains("error: 404"), "{}", stderr(&again));
    }
}

#[test]
fn admin_errors_are_reported() {
    let server = Server::start();
    for args in [
        &["collection", "get", "0123456789abcdef"][..],
        &["client", "disable", "nope"][..],
        &["profile", "refresh", "nope"][..],
    ] {
        let out = server.tg(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).starts_with("error: 404 not_found: no such"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // A 400 names the field.
    let out = server.tg(&["collection", "create", "--name", "x", "--path", "Bad Path"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: 400 invalid_input: path: "),
        "{}",
        stderr(&out)
    );
    // A wrong key: 401 with a hint where the key came from, never the key.
    let out = tg_with(&["client", "list"], |cmd| {
        cmd.env("TOKENGATE_ADMIN_URL", server.admin_url())
            .env("TOKENGATE_ADMIN_KEY", "wrong-key-wrong-key");
    });
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("error: 401 unauthorized: "), "{err}");
    assert!(
        err.contains("TOKENGATE_ADMIN_KEY") && !err.contains("wrong-key"),
        "{err}"
    );
    // Bad local input exits 2 before anything is sent.
    let out = server.tg(&[
        "collection",
        "create",
        "--name",
        "x",
        "--path",
        "x",
        "--endpoint",
        "GET /x ftp://nowhere",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = server.tg(&["collection", "put", "abc", "--file", "/nonexistent/c.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/c.json"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_admin_key_is_a_clear_error() {
    let empty = TempDir::new();
    let out = tg_with(&["client", "list"], |cmd| {
        cmd.arg("--data-dir").arg(empty.path());
    });
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("error: no admin key"), "{err}");
    assert!(err.contains("TOKENGATE_ADMIN_KEY"), "{err}");
    assert!(
        err.contains(&empty.path().join("admin.key").display().to_string()),
        "{err}"
    );
}

#[test]
fn connection_failure_names_the_url() {
    let url = format!("http://{}", free_addr());
    let out = tg_with(&["profile", "list", "--admin-url", &url], |cmd| {
        cmd.env("TOKENGATE_ADMIN_KEY", ADMIN_KEY);
    });
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("error: cannot connect to the admin API at {url}")),
        "{err}"
    );
    let out = tg_with(
        &["client", "list", "--admin-url", "https://127.0.0.1:1"],
        |cmd| {
            cmd.env("TOKENGATE_ADMIN_KEY", ADMIN_KEY);
        },
    );
    // https is spoken now: nothing listens there, so it is a connection failure like http's.
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: cannot connect to the admin API at https://127.0.0.1:1")
    );
    let out = tg_with(
        &["client", "list", "--admin-url", "ftp://127.0.0.1:1"],
        |cmd| {
            cmd.env("TOKENGATE_ADMIN_KEY", ADMIN_KEY);
        },
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn profile_create_refuses_a_private_key_before_sending_it() {
    let server = Server::start();
    let (collection_id, client_id) = server.collection_and_client("priv");
    for private in ["ssh_rsa", "rsa2048.key", "rsa1024.key"] {
        let path = interop(private);
        let args = [
            "profile",
            "create",
            "--client",
            &client_id,
            "--name",
            "oops",
            "--collection",
            &collection_id,
            "--rs256-public-key-file",
            path.to_str().unwrap(),
        ];
        let out = server.tg(&args);
        assert_eq!(out.status.code(), Some(2), "{private}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("is a private key"), "{private}: {err}");
        assert!(err.contains("nothing was sent"), "{private}: {err}");
        assert!(!err.contains("BEGIN"), "{private}: the key leaked: {err}");
    }
    // Nothing reached the server.
    let listed = server.json(&["profile", "list", "--client", &client_id]);
    assert_eq!(listed["items"], serde_json::json!([]), "{listed}");
}

#[test]
fn rs256_profile_with_an_ssh_keygen_key() {
    let dir = TempDir::new();
    let key = dir.path().join("id_rsa");
    let made = Command::new("ssh-keygen")
        .args([
            "-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "cli-test", "-f",
        ])
        .arg(&key)
        .stdin(Stdio::null())
        .output();
    match made {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("ssh-keygen failed: {}", stderr(&out)),
        Err(_) => {
            println!("SKIP: ssh-keygen not found");
            return;
        }
    }
    let server = Server::start();
    let (collection_id, client_id) = server.collection_and_client("rs");
    let public = dir.path().join("id_rsa.pub");
    let token = server.line(&[
        "profile",
        "create",
        "--client",
        &client_id,
        "--name",
        "rsa",
        "--collection",
        &collection_id,
        "--rs256-public-key-file",
        public.to_str().unwrap(),
        "--required-claim",
        "exp",
        "--max-lifetime-s",
        "3600",
        "--token-only",
    ]);
    let sign = |extra: &[&str]| {
        let mut args = vec![
            "jwt",
            "sign",
            "--key",
            key.to_str().unwrap(),
            "--sub",
            &token,
            "--name",
            "Tester",
        ];
        args.extend_from_slice(extra);
        let out = tg(&args);
        ok(&out, &args).trim().to_owned()
    };
    let jwt = sign(&["--exp", "5m"]);
    let (header, claims) = decode(&jwt);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["name"], "Tester");
    let (status, body) = server.get("/rs/hello", &[("Authorization", &bearer(&jwt))]);
    assert_eq!(status, 200, "{body}");
    // The profile requires exp: a JWT without one is refused.
    let no_exp = sign(&[]);
    assert_eq!(
        server
            .get("/rs/hello", &[("Authorization", &bearer(&no_exp))])
            .0,
        401
    );
}

#[test]
fn hs256_profiles_with_an_openssl_secret_file() {
    let dir = TempDir::new();
    let secret = match Command::new("openssl")
        .args(["rand", "-base64", "32"])
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8(out.stdout).unwrap(),
        _ => {
            println!("note: openssl not found; making the secret in Rust");
            let mut bytes = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
            format!("{}\n", STANDARD.encode(bytes))
        }
    };
    assert_eq!(secret.trim_end().len(), 44);
    let file = dir.path().join("secret.txt");
    std::fs::write(&file, &secret).unwrap();
    let file = file.to_str().unwrap();

    let server = Server::start();
    let (collection_id, client_id) = server.collection_and_client("hs");
    // Once as pasted (the 44 characters are the key), once decoded (--secret-is-base64).
    for base64 in [false, true] {
        let mut create = vec![
            "profile",
            "create",
            "--client",
            &client_id,
            "--name",
            "hs",
            "--collection",
            &collection_id,
            "--hs256-secret-file",
            file,
            "--token-only",
        ];
        let mut sign = vec!["jwt", "sign", "--secret-file", file, "--name", "Ann"];
        if base64 {
            create.push("--secret-is-base64");
            sign.push("--secret-is-base64");
        }
        let token = server.line(&create);
        sign.extend_from_slice(&["--sub", &token, "--exp", "1h", "--claim", "jti=1"]);
        let jwt = ok(&tg(&sign), &sign).trim().to_owned();
        let (header, claims) = decode(&jwt);
        assert_eq!(header["alg"], "HS256");
        assert_eq!(claims["jti"], 1);
        let (status, body) = server.get("/hs/hello", &[("Authorization", &bearer(&jwt))]);
        assert_eq!(status, 200, "base64={base64}: {body}");
        // Signed with the other reading of the secret, the JWT does not verify.
        sign.retain(|a| *a != "--secret-is-base64");
        if !base64 {
            sign.push("--secret-is-base64");
        }
        let wrong = ok(&tg(&sign), &sign).trim().to_owned();
        let (status, body) = server.get("/hs/hello", &[("Authorization", &bearer(&wrong))]);
        assert_eq!(status, 401, "{body}");
    }
    // The same secret given inline works too.
    let token = server.line(&[
        "profile",
        "create",
        "--client",
        &client_id,
        "--name",
        "inline",
        "--collection",
        &collection_id,
        "--hs256-secret",
        secret.trim_end(),
        "--token-only",
    ]);
    let args = [
        "jwt",
        "sign",
        "--secret",
        secret.trim_end(),
        "--sub",
        &token,
        "--name",
        "Bo",
    ];
    let jwt = ok(&tg(&args), &args).trim().to_owned();
    assert_eq!(
        server
            .get("/hs/hello", &[("Authorization", &bearer(&jwt))])
            .0,
        200
    );
}

#[test]
fn jwt_sign_with_pem_and_openssh_fixtures() {
    let spki = std::fs::read_to_string(interop("rsa2048.spki.pem")).unwrap();
    let public = RsaPublicKey::parse(&spki).unwrap();
    // PKCS#8 as stored; PKCS#1 converted by openssl when it is there.
    let dir = TempDir::new();
    let mut keys = vec![interop("rsa2048.key")];
    let pkcs1 = dir.path().join("rsa2048.pkcs1.key");
    let converted = Command::new("openssl")
        .args(["rsa", "-traditional", "-in"])
        .arg(interop("rsa2048.key"))
        .arg("-out")
        .arg(&pkcs1)
        .stderr(Stdio::null())
        .status();
    match converted {
        Ok(status) if status.success() => {
            let text = std::fs::read_to_string(&pkcs1).unwrap();
            assert!(text.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
            keys.push(pkcs1);
        }
        _ => println!("SKIP: openssl not found; PKCS#1 not tried"),
    }
    for path in keys {
        let key = path.display();
        let args = [
            "jwt",
            "sign",
            "--key",
            path.to_str().unwrap(),
            "--sub",
            "tok-123",
            "--name",
            "Ann",
            "--exp",
            "1h",
            "--claim",
            "jti=7",
            "--claim",
            "admin=true",
            "--claim",
            "iss=me",
            "--claim",
            r#"obj={"a":[1,2]}"#,
        ];
        let out = tg(&args);
        let stdout = ok(&out, &args);
        assert!(stdout.ends_with('\n') && stdout.lines().count() == 1);
        let jwt = stdout.trim_end();
        let (header, claims) = decode(jwt);
        assert_eq!(header, json!({"alg":"RS256","typ":"JWT"}));
        assert_eq!(claims["sub"], "tok-123");
        assert_eq!(claims["name"], "Ann");
        let iat = claims["iat"].as_i64().unwrap();
        assert!((iat - now_s()).abs() < 60);
        assert_eq!(claims["exp"].as_i64(), Some(iat + 3600));
        assert_eq!(claims["jti"], 7);
        assert_eq!(claims["admin"], true);
        assert_eq!(claims["iss"], "me");
        assert_eq!(claims["obj"], json!({"a":[1,2]}));
        let dot = jwt.rfind('.').unwrap();
        let signature = URL_SAFE_NO_PAD.decode(&jwt[dot + 1..]).unwrap();
        assert!(public.verify(&jwt.as_bytes()[..dot], &signature), "{key}");
    }
    // The OpenSSH fixture signs; its .pub verifies.
    let public =
        RsaPublicKey::parse(&std::fs::read_to_string(interop("ssh_rsa.pub")).unwrap()).unwrap();
    let path = interop("ssh_rsa");
    let args = [
        "jwt",
        "sign",
        "--key",
        path.to_str().unwrap(),
        "--sub",
        "t",
        "--name",
        "n",
    ];
    let jwt = ok(&tg(&args), &args).trim().to_owned();
    let dot = jwt.rfind('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(&jwt[dot + 1..]).unwrap();
    assert!(public.verify(&jwt.as_bytes()[..dot], &signature));
}

#[test]
fn jwt_sign_errors() {
    let key = interop("rsa2048.key");
    let key = key.to_str().unwrap();
    let short = "short-secret-do-not-echo";
    let cases: [(&[&str], i32, &str); 6] = [
        (&["--key", key, "--alg", "HS256"], 2, "--alg HS256"),
        (&["--secret", short, "--alg", "RS256"], 2, "--alg RS256"),
        (&["--secret", short], 1, "at least 32 bytes"),
        (
            &["--secret", short, "--secret-is-base64"],
            1,
            "not valid standard base64",
        ),
        (&["--key", "/nonexistent/id_rsa"], 1, "/nonexistent/id_rsa"),
        (&["--secret-file", key], 1, ""),
    ];
    for (extra, code, needle) in cases {
        let mut args = vec!["jwt", "sign", "--sub", "t", "--name", "n"];
        args.extend_from_slice(extra);
        let out = tg(&args);
        let err = stderr(&out);
        if needle.is_empty() {
            // A PEM file as an HS256 secret is a long enough secret: it signs.
            assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
            continue;
        }
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains(short), "{args:?} echoed the secret: {err}");
    }
    // A public key is not a private key; the error does not echo it.
    let public = interop("rsa2048.spki.pem");
    let out = tg(&[
        "jwt",
        "sign",
        "--sub",
        "t",
        "--name",
        "n",
        "--key",
        public.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr(&out).contains("MII"), "{}", stderr(&out));
    // Exactly one key source; --secret-is-base64 does not go with --key.
    for extra in [
        &[][..],
        &["--secret", "a", "--key", key][..],
        &["--key", key, "--secret-is-base64"][..],
        &["--secret", "a", "--claim", "novalue"][..],
        &["--secret", "a", "--exp", "1y"][..],
    ] {
        let mut args = vec!["jwt", "sign", "--sub", "t", "--name", "n"];
        args.extend_from_slice(extra);
        assert_eq!(tg(&args).status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn help_everywhere() {
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["collection"],
        &["collection", "create"],
        &["collection", "list"],
        &["collection", "get"],
        &["collection", "put"],
        &["collection", "delete"],
        &["client"],
        &["client", "create"],
        &["client", "list"],
        &["client", "get"],
        &["client", "disable"],
        &["client", "enable"],
        &["client", "delete"],
        &["profile"],
        &["profile", "create"],
        &["profile", "list"],
        &["profile", "get"],
        &["profile", "refresh"],
        &["profile", "disable"],
        &["profile", "enable"],
        &["profile", "delete"],
        &["profile", "patch"],
        &["jwt"],
        &["jwt", "sign"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let out = tg(&args);
        let stdout = ok(&out, &args);
        assert!(stdout.contains("Usage: tokengate"), "{args:?}: {stdout}");
    }
    let out = tg(&["collection", "create", "--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("METHOD /path TARGET"));
    // Missing required flags are usage errors.
    assert_eq!(
        tg(&["profile", "create", "--client", "c", "--name", "n"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        tg(&["collection", "create", "--name", "n"]).status.code(),
        Some(2)
    );
}

#[test]
fn list_commands_follow_next_through_every_page() {
    // 2 100 clients: three pages of at most 1000 behind one `client list`.
    let mut state = tokengate::core::model::State::default();
    for n in 0..2100 {
        tokengate::tools::demo::add_client(&mut state, &format!("client {n}")).unwrap();
    }
    let server = Server::start_seeded(Some(&state));
    let listed = server.json(&["client", "list"]);
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2100);
    assert!(listed["next"].is_null());
    let mut ids: Vec<&str> = items.iter().map(|c| c["id"].as_str().unwrap()).collect();
    let in_order = ids.clone();
    ids.sort();
    ids.dedup();
    assert_eq!(ids, in_order, "every client once, in id order");
    assert!(items.iter().all(|c| c.get("portal_url").is_some()));
}
