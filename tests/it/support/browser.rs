//! A real headless Chromium driven through WebDriver (Debian's `chromium` and
//! `chromium-driver`), for the client portal's browser tests. [`Browser::start`] says why it
//! cannot run and returns `None` outside CI; in CI (`CI=true`) a missing browser is a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use super::TempDir;

/// The Chromium binary and its driver, from Debian's packages.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process and one browser session; both end when dropped (call
/// [`Browser::close`] to end the session cleanly).
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: Child,
    _profile: TempDir,
}

/// `POST /session/{id}/se/log`: chromedriver's log endpoint, which W3C WebDriver lacks (the
/// entries `goog:loggingPrefs` asked for since the last call).
#[derive(Debug)]
struct ReadLog(&'static str);

impl WebDriverCompatibleCommand for ReadLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": self.0}).to_string()),
        )
    }
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session with a fresh
    /// profile and console and network logging on. `None` (after printing why) when Chromium
    /// or chromedriver is missing and CI is not set.
    pub async fn start(test: &str) -> Option<Browser> {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(binary).exists() {
                let why = format!("{binary} is missing (apt-get install chromium chromium-driver)");
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("{test}: {why}; CI must install it (.ci/run does)");
                }
                eprintln!("SKIPPED {test}: {why}");
                return None;
            }
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = TempDir::new();
        let mut caps = Capabilities::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-extensions",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        caps.insert(
            "goog:loggingPrefs".into(),
            json!({"browser": "ALL", "performance": "ALL"}),
        );
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(e) if started.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    let _ = driver.kill();
                    panic!("{test}: no WebDriver session from chromedriver: {e}");
                }
            }
        };
        Some(Browser {
            client,
            driver,
            _profile: profile,
        })
    }

    /// The console entries (`{"level","message"}`) logged since the last call.
    pub async fn console(&self) -> Vec<Value> {
        let entries = self.client.issue_cmd(ReadLog("browser")).await.unwrap();
        entries.as_array().cloned().unwrap_or_default()
    }

    /// The DevTools network events (`Network.*` messages as JSON text) since the last call.
    pub async fn network(&self) -> Vec<String> {
        let entries = self.client.issue_cmd(ReadLog("performance")).await.unwrap();
        entries
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e["message"].as_str().map(str::to_owned))
            .filter(|m| m.contains("\"Network."))
            .collect()
    }

    /// Waits (up to 10 s) until `script` (a function body) returns true.
    pub async fn wait_until(&self, what: &str, script: &str) {
        let started = Instant::now();
        loop {
            let done = self.client.execute(script, vec![]).await.unwrap();
            if done == Value::Bool(true) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The element with `id`'s text.
    pub async fn text(&self, id: &str) -> String {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Replaces the value of the input or textarea `id` by typing `text` into it.
    pub async fn type_into(&self, id: &str, text: &str) {
        let element = self.client.find(Locator::Id(id)).await.unwrap();
        element.clear().await.unwrap();
        element.send_keys(text).await.unwrap();
    }

    /// Clicks the element `id`.
    pub async fn click(&self, id: &str) {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Saves a PNG screenshot as `target/test-artifacts/<name>.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Ends the session and chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // A killed chromedriver leaves its browser running: end every process of this profile.
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(self._profile.path())
            .status();
    }
}
