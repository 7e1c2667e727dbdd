//! Prometheus metrics: requests by outcome, cache hits and misses, decision latency.
//!
//! Counters are sharded per thread (cache-line padded) so the hot path never contends
//! on one atomic; `render` sums the shards. Labels are fixed code names, never a token.

use std::cell::Cell;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::core::gate::CacheUse;
use crate::core::reject::Reject;

const SHARDS: usize = 16;
/// Outcome label per index: "ok" then every SPEC error code.
const OUTCOMES: usize = 1 + Reject::ALL.len();
/// Upper bounds of the latency histogram buckets, in microseconds.
const LATENCY_BUCKETS_US: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 10_000, 100_000];

#[repr(align(128))]
#[derive(Default)]
struct Shard {
    outcomes: [AtomicU64; OUTCOMES],
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    latency_sum_ns: AtomicU64,
}

/// The process's metrics.
pub struct Metrics {
    shards: Box<[Shard]>,
    next_shard: AtomicUsize,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            next_shard: AtomicUsize::new(0),
        }
    }
}

thread_local! {
    static SHARD_INDEX: Cell<Option<usize>> = const { Cell::new(None) };
}

fn outcome_index(outcome: Result<(), Reject>) -> usize {
    match outcome {
        Ok(()) => 0,
        Err(reject) => 1 + reject.index(),
    }
}

fn outcome_label(index: usize) -> &'static str {
    if index == 0 {
        "ok"
    } else {
        Reject::ALL[index - 1].code()
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

    /// Counts a decision: its cache use and how long it took.
    #[inline]
    pub fn record_decision(&self, cache: CacheUse, took: Duration) {
        let shard = self.shard();
        match cache {
            CacheUse::Hit => shard.cache_hits.fetch_add(1, Ordering::Relaxed),
            CacheUse::Miss => shard.cache_misses.fetch_add(1, Ordering::Relaxed),
            CacheUse::NotUsed => 0,
        };
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|&bound| micros < bound)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        shard.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        shard.latency_sum_ns.fetch_add(
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
        out.push_str("# HELP tokengate_decision_seconds Time to decide a request (credential, verification, policy).\n# TYPE tokengate_decision_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS_US.iter().enumerate() {
            cumulative += self.sum(|s| &s.latency_buckets[i]);
            let _ = writeln!(
                out,
                "tokengate_decision_seconds_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        cumulative += self.sum(|s| &s.latency_buckets[LATENCY_BUCKETS_US.len()]);
        let _ = writeln!(
            out,
            "tokengate_decision_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "tokengate_decision_seconds_sum {}",
            self.sum(|s| &s.latency_sum_ns) as f64 / 1e9
        );
        let _ = writeln!(out, "tokengate_decision_seconds_count {cumulative}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_by_outcome_and_histogram() {
        let metrics = Metrics::default();
        metrics.record_outcome(Ok(()));
        metrics.record_outcome(Err(Reject::InvalidToken));
        metrics.record_outcome(Err(Reject::RateLimited { retry_after_s: 7 }));
        metrics.record_decision(CacheUse::Hit, Duration::from_nanos(300));
        metrics.record_decision(CacheUse::Miss, Duration::from_micros(30));
        let text = metrics.render(5);
        assert!(text.contains("tokengate_requests_total{outcome=\"ok\"} 1\n"));
        assert!(text.contains("tokengate_requests_total{outcome=\"invalid_token\"} 1\n"));
        assert!(text.contains("tokengate_requests_total{outcome=\"rate_limited\"} 1\n"));
        assert!(text.contains("tokengate_token_cache_hits_total 1\n"));
        assert!(text.contains("tokengate_token_cache_entries 5\n"));
        assert!(text.contains("tokengate_decision_seconds_bucket{le=\"0.000001\"} 1\n"));
        assert!(text.contains("tokengate_decision_seconds_bucket{le=\"+Inf\"} 2\n"));
    }
}
