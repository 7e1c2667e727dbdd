//! The client portal in a real headless Chromium (WebDriver through chromedriver), against the
//! real binary: what a client does with its URL, keyboard included, with the page's own CSP in
//! force. Screenshots at desktop width and at 360 px go to `target/test-artifacts/`.

use std::path::Path;
use std::process::Command;

use fantoccini::key::Key;
use fantoccini::Locator;
use serde_json::{json, Value};

use crate::support::browser::Browser;
use crate::support::fixtures::{data_path, read_data};
use crate::support::gateway::forward;
use crate::support::process::Served;
use crate::support::upstream::Upstream;
use crate::support::TempDir;

/// What the test's client holds: its portal URL and one credential per profile.
struct Setup {
    portal_url: String,
    token: String,
    hs256_token: String,
    hs256_secret: String,
    rs256_token: String,
    rs256_private_pem: String,
}

/// An RS256 key pair the way the product's users make one: `ssh-keygen -t rsa` (the fixture),
/// the profile holding the `.pub` line, and the private key converted as the page says
/// (`ssh-keygen -p -m PKCS8 -f KEY`). Without ssh-keygen (never in CI), the PKCS#8 fixture.
fn rs256_pair(dir: &Path) -> (String, String) {
    let key = dir.join("client_key");
    std::fs::copy(data_path("jwt-interop/ssh_rsa"), &key).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let converted = Command::new("ssh-keygen")
        .args(["-p", "-m", "PKCS8", "-N", "", "-P", "", "-q", "-f"])
        .arg(&key)
        .status();
    match converted {
        Ok(status) if status.success() => {
            let pem = std::fs::read_to_string(&key).unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
            (read_data("jwt-interop/ssh_rsa.pub"), pem)
        }
        _ => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "ssh-keygen is missing in CI"
            );
            eprintln!("note: no ssh-keygen; the RS256 case uses the PKCS#8 fixture");
            (
                read_data("jwt-interop/rsa2048.spki.pem"),
                read_data("jwt-interop/rsa2048.key"),
            )
        }
    }
}

async fn setup(served: &Served, upstream: &Upstream, dir: &Path) -> Setup {
    let admin = &served.admin;
    let echo = format!("http://{}", upstream.addr);
    let shop = admin
        .collection(
            "shop",
            json!([
                forward("GET", "/orders/:id", &echo),
                forward("POST", "/orders", &echo)
            ]),
        )
        .await;
    admin
        .collection("billing", json!([forward("GET", "/invoices", &echo)]))
        .await;
    let created = admin
        .expect(201, "POST", "/v1/clients", Some(json!({"name": "Acme"})))
        .await;
    let client_id = created["id"].as_str().unwrap();
    let portal_url = created["portal_url"].as_str().unwrap().to_owned();
    let token = admin
        .profile(
            client_id,
            json!({"collections": [shop], "auth": {"type": "token"}}),
        )
        .await
        .token;
    // What `openssl rand -base64 32` prints, used as its 44 characters.
    let hs256_secret = "q3bW0Q9mJ8Yk2n5Xv7tR1sLc4pZ6hF0aE9dG3uK8wIo=".to_owned();
    let hs256_token = admin
        .profile(
            client_id,
            json!({"name": "hs", "collections": [shop],
                   "auth": {"type": "jwt", "alg": "HS256", "secret": hs256_secret}}),
        )
        .await
        .token;
    let (public_key, rs256_private_pem) = rs256_pair(dir);
    let rs256_token = admin
        .profile(
            client_id,
            json!({"name": "rs", "collections": [shop],
                   "auth": {"type": "jwt", "alg": "RS256", "public_key": public_key}}),
        )
        .await
        .token;
    Setup {
        portal_url,
        token,
        hs256_token,
        hs256_secret,
        rs256_token,
        rs256_private_pem,
    }
}

/// Presses Test and waits for the response view; returns (status line, body text).
async fn press_test(browser: &Browser) -> (String, String) {
    browser.click("send").await;
    browser
        .wait_until(
            "the response",
            "const s = document.getElementById('status').textContent; \
             return s !== '' && s !== 'Sending…';",
        )
        .await;
    (
        browser.text("status").await,
        browser.text("response-body").await,
    )
}

/// Makes a JWT in the page's JWT maker and moves it into the test form.
async fn make_jwt(browser: &Browser, sub: &str, alg: &str, key: &str) -> String {
    browser.type_into("jwt-sub", sub).await;
    browser.type_into("jwt-name", "Browser test").await;
    if alg == "HS256" {
        browser.click("alg-hs256").await;
        browser.type_into("jwt-secret", key).await;
    } else {
        browser.click("alg-rs256").await;
        browser.type_into("jwt-key", key).await;
    }
    browser.click("jwt-make").await;
    browser
        .wait_until(
            "a JWT",
            "return document.getElementById('jwt-out').value.split('.').length === 3 \
             || document.getElementById('jwt-error').textContent !== '';",
        )
        .await;
    assert_eq!(browser.text("jwt-error").await, "", "the JWT maker failed");
    let jwt = browser
        .client
        .execute("return document.getElementById('jwt-out').value;", vec![])
        .await
        .unwrap();
    browser.click("jwt-use").await;
    let jwt = jwt.as_str().unwrap().to_owned();
    let header = jwt.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], alg);
    jwt
}

#[tokio::test]
async fn a_client_tests_its_endpoints_in_a_real_browser() {
    let Some(browser) = Browser::start("portal_browser").await else {
        return;
    };
    let dir = TempDir::new();
    let upstream = Upstream::echo().await;
    let served = Served::spawn(dir.path(), &[]).await;
    let setup = setup(&served, &upstream, dir.path()).await;
    let client = &browser.client;
    client.goto(&setup.portal_url).await.unwrap();
    assert_eq!(client.title().await.unwrap(), "API portal — Acme");

    // Only the granted collection is listed, and the select offers exactly its endpoints.
    let listed = client
        .execute(
            "return [...document.querySelectorAll('section.collection')].map(s => s.dataset.collection);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(listed, json!(["shop"]));
    let options = client
        .execute(
            "return [...document.querySelectorAll('#endpoint option')].map(o => o.value);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        options,
        json!(["GET /shop/orders/:id", "POST /shop/orders"])
    );

    // Every control has a label.
    let unlabelled = client
        .execute(
            "return [...document.querySelectorAll('input, select, textarea')] \
               .filter(e => !(e.labels && e.labels.length)).map(e => e.id);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(unlabelled, json!([]), "controls without a label");

    // Auth token → GET /orders/:id with id → 200 and the upstream's body.
    browser.click("auth-token").await;
    browser.type_into("credential", &setup.token).await;
    let select = client.find(Locator::Id("endpoint")).await.unwrap();
    select
        .select_by_value("GET /shop/orders/:id")
        .await
        .unwrap();
    browser.type_into("param-id", "42").await;
    let curl = browser.text("curl").await;
    assert!(
        curl.contains(&format!("-H 'API-Token: {}'", setup.token)),
        "{curl}"
    );
    assert!(curl.ends_with("/shop/orders/42'"), "{curl}");
    let (status, body) = press_test(&browser).await;
    assert!(status.starts_with("200"), "{status}: {body}");
    assert!(
        body.contains("\"uri\": \"/orders/42\""),
        "pretty-printed upstream body: {body}"
    );
    assert!(browser
        .text("response-headers")
        .await
        .contains("x-upstream: echo"));
    assert!(browser.text("elapsed").await.ends_with(" ms"));
    client
        .execute(
            "document.getElementById('result').scrollIntoView(); return true;",
            vec![],
        )
        .await
        .unwrap();
    let desktop = browser.screenshot("portal-desktop").await;

    // A wrong token → 401 and the error body.
    browser.type_into("credential", &"0".repeat(64)).await;
    let (status, body) = press_test(&browser).await;
    assert!(status.starts_with("401"), "{status}");
    assert!(body.contains("\"error\": \"invalid_token\""), "{body}");

    // A JWT made in the page: HS256 with the shared secret, then RS256 with a PKCS#8 key.
    let hs256 = make_jwt(&browser, &setup.hs256_token, "HS256", &setup.hs256_secret).await;
    assert!(browser
        .text("curl")
        .await
        .contains(&format!("Authorization: Bearer {hs256}")));
    let (status, body) = press_test(&browser).await;
    assert!(
        status.starts_with("200"),
        "HS256 JWT made in the page: {status}: {body}"
    );
    assert!(body.contains("\"x-tokengate-caller-name\""), "{body}");
    make_jwt(
        &browser,
        &setup.rs256_token,
        "RS256",
        &setup.rs256_private_pem,
    )
    .await;
    let (status, body) = press_test(&browser).await;
    assert!(
        status.starts_with("200"),
        "RS256 JWT made in the page: {status}: {body}"
    );

    // Neither the secret nor the private key left the page: read every request Chromium sent
    // (URL, headers, body) from its network log. The test request itself is there (so the log
    // is the real one), carrying the auth token as it should.
    let network = browser.network().await;
    assert!(
        network
            .iter()
            .any(|m| m.contains("/shop/orders/42") && m.contains(&setup.token)),
        "the network log shows the test requests"
    );
    let key_body: String = setup
        .rs256_private_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let key_chunks: Vec<&str> = (0..4)
        .map(|i| &key_body[200 + i * 300..232 + i * 300])
        .collect();
    for message in &network {
        assert!(
            !message.contains(&setup.hs256_secret),
            "the HS256 secret was sent: {message}"
        );
        for chunk in &key_chunks {
            assert!(
                !message.contains(chunk),
                "the private key was sent: {message}"
            );
        }
    }

    // No CSP violation and no script error on the console (the 401 above logs a failed
    // resource load, which is expected).
    let console = browser.console().await;
    for entry in &console {
        let message = entry["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains("Content Security Policy") && !message.contains("Refused to"),
            "CSP violation: {message}"
        );
        if entry["level"] == "SEVERE" {
            assert!(
                message.contains("Failed to load resource") && message.contains("401"),
                "console error: {message}"
            );
        }
    }
    // The console check can fail: an inline script injected now is refused and reported.
    client
        .execute(
            "const s = document.createElement('script'); s.textContent = 'window.x = 1'; \
             document.body.append(s); return true;",
            vec![],
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let after = browser.console().await;
    assert!(
        after.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("Content Security Policy"))),
        "the page's CSP refuses inline script and the console shows it: {after:?}"
    );

    // The keyboard alone: from a fresh load, Tab to the token field, type, Tab to the endpoint
    // and its parameter, Enter.
    client.goto(&setup.portal_url).await.unwrap();
    let mut order = Vec::new();
    for _ in 0..12 {
        let focused = client.active_element().await.unwrap();
        focused.send_keys(&Key::Tab.to_string()).await.unwrap();
        let id = client
            .active_element()
            .await
            .unwrap()
            .attr("id")
            .await
            .unwrap();
        let id = id.unwrap_or_default();
        order.push(id.clone());
        if id == "credential" {
            break;
        }
    }
    assert_eq!(
        order.last().map(String::as_str),
        Some("credential"),
        "tab order: {order:?}"
    );
    let typed = format!("{}{}", setup.token, Key::Tab);
    client
        .active_element()
        .await
        .unwrap()
        .send_keys(&typed)
        .await
        .unwrap();
    assert_eq!(
        client
            .active_element()
            .await
            .unwrap()
            .attr("id")
            .await
            .unwrap()
            .as_deref(),
        Some("endpoint")
    );
    client
        .active_element()
        .await
        .unwrap()
        .send_keys(&Key::Tab.to_string())
        .await
        .unwrap();
    assert_eq!(
        client
            .active_element()
            .await
            .unwrap()
            .attr("id")
            .await
            .unwrap()
            .as_deref(),
        Some("param-id")
    );
    let typed = format!("7{}", Key::Enter);
    client
        .active_element()
        .await
        .unwrap()
        .send_keys(&typed)
        .await
        .unwrap();
    browser
        .wait_until(
            "the keyboard-only test",
            "return document.getElementById('status').textContent.startsWith('200');",
        )
        .await;
    assert!(browser
        .text("response-body")
        .await
        .contains("\"uri\": \"/orders/7\""));

    // Readable at 360 px: nothing wider than the viewport.
    client.set_window_size(360, 800).await.unwrap();
    let width = client
        .execute(
            "return [window.innerWidth, document.documentElement.scrollWidth];",
            vec![],
        )
        .await
        .unwrap();
    let (inner, scroll) = (width[0].as_u64().unwrap(), width[1].as_u64().unwrap());
    assert!(inner <= 400, "the window is narrow: {inner}");
    assert!(
        scroll <= inner,
        "no horizontal scrolling at {inner} px: {scroll}"
    );
    let narrow = browser.screenshot("portal-360px").await;
    eprintln!("screenshots: {} {}", desktop.display(), narrow.display());
    browser.close().await;
}
