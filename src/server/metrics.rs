//! Prometheus metrics: requests by outcome (refusals by error code), cache hits and misses,
//! decision and upstream latency, open connections, resident memory, build info.
//!
//! Counters are sharded per thread (cache-line padded) so the hot path never contends
//! on one atomic; `render` sums the shards. Labels are fixed code names, never a token.

use std::cell::Cell;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::core::gate::CacheUse;
use crate::core::reject::Reject;

const SHARDS: usize = 16;
/// Outcome label per index: "ok" then every SPEC error code.
const OUTCOMES: usize = 1 + Reject::CODES.len();
/// Upper bounds of the latency histogram buckets, in microseconds.
const LATENCY_BUCKETS_US: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 10_000, 100_000];
/// Upper bounds of the upstream latency histogram buckets, in milliseconds.
const UPSTREAM_BUCKETS_MS: [u64; 13] = [
    1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000,
];

#[repr(align(128))]
#[derive(Default)]
struct Shard {
    outcomes: [AtomicU64; OUTCOMES],
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    latency_sum_ns: AtomicU64,
    upstream_buckets: [AtomicU64; UPSTREAM_BUCKETS_MS.len() + 1],
    upstream_sum_ns: AtomicU64,
}

/// The process's metrics.
pub struct Metrics {
    shards: Box<[Shard]>,
    next_shard: AtomicUsize,
    /// Open data-plane connections (a gauge: the listener adds and removes).
    pub open_connections: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            next_shard: AtomicUsize::new(0),
            open_connections: AtomicI64::new(0),
        }
    }
}

thread_local! {
    static SHARD_INDEX: Cell<Option<usize>> = const { Cell::new(None) };
}

fn outcome_index(outcome: Result<(), Reject>) -> usize {
    match outcome {
        Ok(()) => 0,
        Err(reject) => 1 + reject.code_index(),
    }
}

fn outcome_label(index: usize) -> &'static str {
    if index == 0 {
        "ok"
    } else {
        Reject::CODES[index - 1]
    }
}

impl Metrics {
    fn shard(&self) -> &Shard {
        let index = SHARD_INDEX.with(|cell| match cell.get() {
            Some(i) => i,
            None => {
                let i = self.next_shard.fetch_add(1, Ordering::Relaxed) % SHARDS;
                cell.set(Some(i));
                i
            }
        });
        &self.shards[index]
    }

    /// Counts one request's outcome.
    #[inline]
    pub fn record_outcome(&self, outcome: Result<(), Reject>) {
        self.shard().outcomes[outcome_index(outcome)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a decision: its cache use and how long it took, in nanoseconds.
    #[inline]
    pub fn record_decision(&self, cache: CacheUse, took_ns: u64) {
        let shard = self.shard();
        match cache {
            CacheUse::Hit => shard.cache_hits.fetch_add(1, Ordering::Relaxed),
            CacheUse::Miss => shard.cache_misses.fetch_add(1, Ordering::Relaxed),
            CacheUse::NotUsed => 0,
        };
        let bucket = bucket_index(&LATENCY_BUCKETS_US, took_ns / 1_000);
        shard.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        shard.latency_sum_ns.fetch_add(took_ns, Ordering::Relaxed);
    }

    /// Counts one upstream round trip: from sending the request to its response head.
    pub fn record_upstream(&self, took: Duration) {
        let shard = self.shard();
        let millis = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        let bucket = bucket_index(&UPSTREAM_BUCKETS_MS, millis);
        shard.upstream_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        shard.upstream_sum_ns.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn sum(&self, read: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| read(s).load(Ordering::Relaxed))
            .sum()
    }

    /// (cache hits, cache misses).
    pub fn cache_counts(&self) -> (u64, u64) {
        (self.sum(|s| &s.cache_hits), self.sum(|s| &s.cache_misses))
    }

    /// The Prometheus text exposition.
    pub fn render(&self, cache_entries: u64) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str("# HELP tokengate_requests_total Front-door requests by outcome.\n# TYPE tokengate_requests_total counter\n");
        for i in 0..OUTCOMES {
            let _ = writeln!(
                out,
                "tokengate_requests_total{{outcome=\"{}\"}} {}",
                outcome_label(i),
                self.sum(|s| &s.outcomes[i])
            );
        }
        let (hits, misses) = self.cache_counts();
        out.push_str("# HELP tokengate_token_cache_hits_total Verified-token cache hits.\n# TYPE tokengate_token_cache_hits_total counter\n");
        let _ = writeln!(out, "tokengate_token_cache_hits_total {hits}");
        out.push_str("# HELP tokengate_token_cache_misses_total Verified-token cache misses.\n# TYPE tokengate_token_cache_misses_total counter\n");
        let _ = writeln!(out, "tokengate_token_cache_misses_total {misses}");
        out.push_str("# HELP tokengate_token_cache_entries Tokens in the verified-token cache.\n# TYPE tokengate_token_cache_entries gauge\n");
        let _ = writeln!(out, "tokengate_token_cache_entries {cache_entries}");
        let decision: Vec<u64> = (0..=LATENCY_BUCKETS_US.len())
            .map(|i| self.sum(|s| &s.latency_buckets[i]))
            .collect();
        render_histogram(
            &mut out,
            "tokengate_decision_seconds",
            "Time to decide a request (credential, verification, policy).",
            LATENCY_BUCKETS_US.iter().map(|&us| us as f64 / 1e6),
            &decision,
            self.sum(|s| &s.latency_sum_ns) as f64 / 1e9,
        );
        let upstream: Vec<u64> = (0..=UPSTREAM_BUCKETS_MS.len())
            .map(|i| self.sum(|s| &s.upstream_buckets[i]))
            .collect();
        render_histogram(
            &mut out,
            "tokengate_upstream_seconds",
            "Time from sending a request upstream to its response head.",
            UPSTREAM_BUCKETS_MS.iter().map(|&ms| ms as f64 / 1e3),
            &upstream,
            self.sum(|s| &s.upstream_sum_ns) as f64 / 1e9,
        );
        out.push_str("# HELP tokengate_open_connections Open data-plane connections.\n# TYPE tokengate_open_connections gauge\n");
        let _ = writeln!(
            out,
            "tokengate_open_connections {}",
            self.open_connections.load(Ordering::Relaxed)
        );
        if let Some(bytes) = resident_memory_bytes() {
            out.push_str("# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\n");
            let _ = writeln!(out, "process_resident_memory_bytes {bytes}");
        }
        out.push_str("# HELP tokengate_build_info The running build; the value is always 1.\n# TYPE tokengate_build_info gauge\n");
        let _ = writeln!(
            out,
            "tokengate_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        out
    }
}

/// The histogram bucket of `value`: the first bound it is under, or `bounds.len()` (past all).
pub(crate) fn bucket_index(bounds: &[u64], value: u64) -> usize {
    bounds
        .iter()
        .position(|&bound| value < bound)
        .unwrap_or(bounds.len())
}

/// Writes one Prometheus histogram: `counts[i]` is the count of bucket `i` (the last one past
/// every bound), rendered cumulatively with `le` in seconds, then `_sum` and `_count`.
pub(crate) fn render_histogram(
    out: &mut String,
    name: &str,
    help: &str,
    bounds_s: impl Iterator<Item = f64>,
    counts: &[u64],
    sum_s: f64,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut cumulative = 0;
    for (bound, count) in bounds_s.zip(counts) {
        cumulative += count;
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    cumulative += counts.last().copied().unwrap_or(0);
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(out, "{name}_sum {sum_s}");
    let _ = writeln!(out, "{name}_count {cumulative}");
}

/// The process's resident set size, from `VmRSS` in `/proc/self/status` (Linux); `None` elsewhere.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_by_outcome_and_histogram() {
        let metrics = Metrics::default();
        metrics.record_outcome(Ok(()));
        metrics.record_outcome(Err(Reject::InvalidToken));
        metrics.record_outcome(Err(Reject::ALL[7]));
        metrics.record_decision(CacheUse::Hit, 300);
        metrics.record_decision(CacheUse::Miss, 30_000);
        let text = metrics.render(5);
        assert!(text.contains("tokengate_requests_total{outcome=\"ok\"} 1\n"));
        assert!(text.contains("tokengate_requests_total{outcome=\"invalid_token\"} 1\n"));
        assert!(text.contains("tokengate_requests_total{outcome=\"rate_limited\"} 1\n"));
        assert!(text.contains("tokengate_token_cache_hits_total 1\n"));
        assert!(text.contains("tokengate_token_cache_entries 5\n"));
        assert!(text.contains("tokengate_decision_seconds_bucket{le=\"0.000001\"} 1\n"));
        assert!(text.contains("tokengate_decision_seconds_bucket{le=\"+Inf\"} 2\n"));
    }

    #[test]
    fn renders_upstream_latency_connections_memory_and_build() {
        let metrics = Metrics::default();
        metrics.record_upstream(Duration::from_millis(3));
        metrics.record_upstream(Duration::from_secs(40));
        metrics.record_outcome(Err(Reject::AddressNotAllowed));
        metrics.record_outcome(Err(Reject::CollectionNotGranted));
        metrics.open_connections.fetch_add(2, Ordering::Relaxed);
        let text = metrics.render(0);
        assert!(text.contains("tokengate_upstream_seconds_bucket{le=\"0.001\"} 0\n"));
        assert!(text.contains("tokengate_upstream_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("tokengate_upstream_seconds_bucket{le=\"30\"} 1\n"));
        assert!(text.contains("tokengate_upstream_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("tokengate_upstream_seconds_count 2\n"));
        // Both 403 reasons are one code, one series.
        assert!(text.contains("tokengate_requests_total{outcome=\"forbidden\"} 2\n"));
        assert_eq!(text.matches("outcome=\"forbidden\"").count(), 1);
        assert!(text.contains("tokengate_open_connections 2\n"));
        assert!(text.contains("process_resident_memory_bytes "));
        assert!(text.contains(&format!(
            "tokengate_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
    }
}
