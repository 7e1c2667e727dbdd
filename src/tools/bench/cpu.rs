//! CPU time used by the server's and the load generator's threads, read from `/proc` (Linux).
//!
//! On a machine shared with other work, requests/s says as much about the neighbours as about
//! tokengate; CPU time per request says how much work a request cost, whatever share of the
//! cores the run was given. Threads are told apart by the names the harness gives its runtimes.
//! Elsewhere than Linux, or when `/proc` cannot be read, the samples are `None`.

use std::time::Duration;

/// Thread-name prefix of the server runtime's workers (`/proc` truncates names to 15 bytes).
pub const SERVER_THREAD: &str = "tokengate-server";
/// Thread-name prefix of the per-core data-plane threads (`tokengate-data-N`).
pub const DATA_THREAD: &str = "tokengate-data";
/// Thread-name prefix of the load generator runtime's workers.
pub const LOAD_THREAD: &str = "bench-load";

/// `/proc` reports CPU time in clock ticks of `USER_HZ`, 100 on every Linux architecture.
const TICKS_PER_SECOND: u64 = 100;

/// CPU time (user + system) accumulated so far by each group of threads.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSample {
    /// Threads of the server runtime.
    pub server: Duration,
    /// Threads of the load generator runtime.
    pub load: Duration,
}

impl CpuSample {
    /// CPU time used between `earlier` and `self`.
    pub fn since(&self, earlier: &CpuSample) -> CpuSample {
        CpuSample {
            server: self.server.saturating_sub(earlier.server),
            load: self.load.saturating_sub(earlier.load),
        }
    }
}

/// Reads the CPU time of this process's threads, grouped by runtime.
pub fn sample() -> Option<CpuSample> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let mut server_ticks = 0u64;
    let mut load_ticks = 0u64;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // The thread ended meanwhile.
        };
        let Some((name, ticks)) = parse_stat(&stat) else {
            continue;
        };
        if is_named(name, SERVER_THREAD) || name.starts_with(DATA_THREAD) {
            server_ticks += ticks;
        } else if is_named(name, LOAD_THREAD) {
            load_ticks += ticks;
        }
    }
    let ticks = |t: u64| Duration::from_millis(t * 1000 / TICKS_PER_SECOND);
    Some(CpuSample {
        server: ticks(server_ticks),
        load: ticks(load_ticks),
    })
}

/// Whether a `/proc` thread name is `full`, which the kernel cuts to 15 bytes.
fn is_named(proc_name: &str, full: &str) -> bool {
    proc_name.as_bytes() == &full.as_bytes()[..full.len().min(15)]
}

/// The thread name and its user + system ticks from a `/proc/…/stat` line.
fn parse_stat(stat: &str) -> Option<(&str, u64)> {
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so cut at the last `)`.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    let mut fields = stat.get(close + 1..)?.split_ascii_whitespace();
    // After the name: state is field 3 of the line; utime is field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((name, utime + stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_parsed() {
        let line =
            "4242 (tokengate-serve) S 1 4242 4242 0 -1 4194624 100 0 0 0 250 30 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_stat(line), Some(("tokengate-serve", 280)));
        let odd = "7 (a) b (c)) R 1 1 1 0 -1 0 0 0 0 0 5 6 0 0";
        assert_eq!(parse_stat(odd), Some(("a) b (c)", 11)));
        assert_eq!(parse_stat("garbage"), None);
        assert!(is_named("tokengate-serve", SERVER_THREAD));
        assert!(is_named("bench-load", LOAD_THREAD));
        assert!(!is_named("tokengate", SERVER_THREAD));
    }

    #[test]
    fn samples_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(sample().is_some());
        }
    }
}
