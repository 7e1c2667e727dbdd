//! The access log: one JSON line per data-plane request (`--access-log PATH|-`).
//!
//! Lines are built on the request's thread and handed to one writer thread through a bounded
//! channel, so a slow disk never stalls a request: when the channel is full the line is dropped
//! and counted (`tokengate_access_log_dropped_total`). The writer never blocks on the channel:
//! it wakes every [`WRITE_INTERVAL`] and drains it, so a request never pays for waking a thread
//! (a futex call per line cost more than the line itself). Lines reach the file within about
//! that interval. A line holds who and what, never a token,
//! a secret or a key: the fields are the time, client address, method, normalized path, status,
//! error code, client and profile ids, auth kind, cache use, upstream status and duration.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;

use serde::Serialize;

use crate::door::clock::Stamp;
use crate::portal::redact_path;

/// Lines that may wait for the writer before new ones are dropped (at one drain every
/// [`WRITE_INTERVAL`], over a million lines a second).
const QUEUE_LINES: usize = 65_536;
/// How often the writer drains the queue and flushes.
pub const WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// One request, as logged. Borrowed from the request; serialized once.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// RFC 3339 UTC time the request head was read, with milliseconds.
    pub time: &'a str,
    /// The client address (after `--trusted-proxies`).
    pub peer: IpAddr,
    /// The request method.
    pub method: &'a str,
    /// The normalized path (no query: a query may carry secrets).
    pub path: &'a str,
    /// The status sent to the client.
    pub status: u16,
    /// The `error` code of a refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    /// The caller's client id, once authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<&'a str>,
    /// The caller's profile id, once authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<&'a str>,
    /// `token` or `jwt`, once authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<&'a str>,
    /// `hit`, `miss`, or absent when no JWT cache was consulted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<&'a str>,
    /// The upstream's status, when the request was forwarded and answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    /// Seconds from the request head to the response head.
    pub duration_s: f64,
}

/// Where access log lines go.
pub struct AccessLog {
    tx: SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

impl AccessLog {
    /// Opens the log: `-` is standard output, anything else a file opened for appending
    /// (created with mode 0640). Starts the writer thread.
    ///
    /// Errors: the file cannot be opened (the message names it).
    pub fn open(target: &str) -> io::Result<AccessLog> {
        let out: Box<dyn Write + Send> = if target == "-" {
            Box::new(io::stdout())
        } else {
            let path = Path::new(target);
            let mut options = OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o640);
            }
            let file = options.open(path).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot open the access log {}: {e}", path.display()),
                )
            })?;
            Box::new(file)
        };
        let (tx, rx) = mpsc::sync_channel(QUEUE_LINES);
        std::thread::Builder::new()
            .name("tokengate-access-log".into())
            .spawn(move || write_lines(rx, out))?;
        Ok(AccessLog {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Queues one line; drops it (and counts the drop) when the writer is behind.
    pub fn record(&self, entry: &Entry<'_>) {
        let Ok(mut line) = serde_json::to_string(entry) else {
            return;
        };
        line.push('\n');
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The writer thread: every [`WRITE_INTERVAL`], drains the queue into a buffer and flushes.
/// Ends (after a last drain) when every sender is gone.
fn write_lines(rx: Receiver<String>, out: Box<dyn Write + Send>) {
    let mut out = BufWriter::with_capacity(256 * 1024, out);
    loop {
        std::thread::sleep(WRITE_INTERVAL);
        loop {
            match rx.try_recv() {
                Ok(line) => {
                    let _ = out.write_all(line.as_bytes());
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = out.flush();
                    return;
                }
            }
        }
        let _ = out.flush();
    }
}

/// Formats milliseconds since the Unix epoch as RFC 3339 UTC with milliseconds
/// (`2026-11-29T17:05:58.123Z`), by the civil-from-days algorithm (H. Hinnant).
pub fn rfc3339_ms(now_ms: u64) -> String {
    let secs = now_ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now_ms % 1000
    )
}

/// What the access log needs from a request, owned so it can wait for the upstream.
pub(crate) struct LogLine {
    pub(crate) time: String,
    pub(crate) peer: IpAddr,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) client_id: Option<String>,
    pub(crate) profile_id: Option<String>,
    pub(crate) auth: Option<&'static str>,
    pub(crate) cache: Option<&'static str>,
}

impl LogLine {
    /// The line of `request` from `peer`, received at `now_ms` (Unix milliseconds).
    pub(crate) fn new(now_ms: u64, peer: IpAddr, request: &http::request::Parts) -> LogLine {
        LogLine {
            time: rfc3339_ms(now_ms),
            peer,
            method: request.method.as_str().to_owned(),
            // Replaced by the normalized path once it is known; a refused raw path is logged
            // as sent, without its query (and without a portal key).
            path: redact_path(request.uri.path()).into_owned(),
            client_id: None,
            profile_id: None,
            auth: None,
            cache: None,
        }
    }

    /// Queues the line with the answer's `status`, refusal code and upstream status; the
    /// duration runs from `started` to now.
    pub(crate) fn write(
        &self,
        log: &AccessLog,
        status: u16,
        error: Option<&str>,
        upstream_status: Option<u16>,
        started: Stamp,
    ) {
        log.record(&Entry {
            time: &self.time,
            peer: self.peer,
            method: &self.method,
            path: &self.path,
            status,
            error,
            client_id: self.client_id.as_deref(),
            profile_id: self.profile_id.as_deref(),
            auth: self.auth,
            cache: self.cache,
            upstream_status,
            duration_s: started.elapsed().as_secs_f64(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_971_958_123), "2026-11-29T17:05:58.123Z");
    }

    #[test]
    fn entries_serialize_without_empty_fields() {
        let entry = Entry {
            time: "t",
            peer: "127.0.0.1".parse().unwrap(),
            method: "GET",
            path: "/a",
            status: 401,
            error: Some("invalid_token"),
            client_id: None,
            profile_id: None,
            auth: None,
            cache: None,
            upstream_status: None,
            duration_s: 0.5,
        };
        let line = serde_json::to_string(&entry).unwrap();
        assert_eq!(
            line,
            r#"{"time":"t","peer":"127.0.0.1","method":"GET","path":"/a","status":401,"error":"invalid_token","duration_s":0.5}"#
        );
    }
}
