//! The real `tokengate serve` binary as a child process, on free loopback ports.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::gateway::AdminClient;
use super::ADMIN_KEY;

/// A running `tokengate serve`; killed when dropped.
pub struct Served {
    /// The data plane's address.
    pub data: SocketAddr,
    /// The admin API.
    pub admin: AdminClient,
    child: Child,
    /// Everything the process wrote to stderr so far (for failure messages).
    log: Arc<Mutex<String>>,
}

impl Served {
    /// Starts `tokengate serve` over `data_dir` with the test admin key and `extra` flags, and
    /// waits (up to 20 s) until it logs the addresses it serves on.
    pub async fn spawn(data_dir: &Path, extra: &[&str]) -> Served {
        Self::spawn_with_env(data_dir, extra, &[]).await
    }

    /// [`Served::spawn`] with extra environment variables.
    pub async fn spawn_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tokengate"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("TOKENGATE_ADMIN_KEY", ADMIN_KEY)
            .env("TOKENGATE_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the tokengate binary starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (found, addresses) = tokio::sync::oneshot::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut found = Some(found);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let line = strip_ansi(&line);
                    if let (Some(data), Some(admin)) =
                        (field(&line, "data_plane="), field(&line, "admin="))
                    {
                        if let Some(found) = found.take() {
                            let _ = found.send((data, admin));
                        }
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let (data, admin) = match tokio::time::timeout(Duration::from_secs(20), addresses).await {
            Ok(Ok(addresses)) => addresses,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("tokengate serve did not start:\n{}", log.lock().unwrap());
            }
        };
        Served {
            data,
            admin: AdminClient { addr: admin },
            child,
            log,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit (panics after `limit`).
    pub async fn exit_status(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "tokengate did not exit within {limit:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What the process logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The socket address after `name` in a log line (`name=127.0.0.1:8080 …`).
fn field(line: &str, name: &str) -> Option<SocketAddr> {
    let start = line.find(name)? + name.len();
    line[start..].split_whitespace().next()?.parse().ok()
}

/// `text` without ANSI escape sequences.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
