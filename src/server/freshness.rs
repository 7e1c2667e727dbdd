//! How fresh this node's view of the store is: the time of its last successful round trip to
//! the store, and whether that is older than `--max-staleness-s` (SPEC §6). Shared by the node's
//! sync loop (which marks round trips), the data plane (which answers 503 `unavailable` while
//! stale) and the admin API (`/readyz`, the `tokengate_store_up` metric); and how long changes
//! took from their commit to being applied here (`tokengate_config_propagation_seconds`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The freshness of one node's snapshot.
pub struct Freshness {
    /// When this value was made; the origin of `last_ok_ms`.
    origin: Instant,
    /// Milliseconds after `origin` of the last successful round trip to the store.
    last_ok_ms: AtomicU64,
    /// Whether the last attempt to reach the store succeeded.
    up: AtomicBool,
    /// Older than this is stale; `None` serves from memory however old (the default).
    max_staleness: Option<Duration>,
    /// Commit-to-applied counts per bucket of [`PROPAGATION_BUCKETS_MS`] (the last: past all).
    propagation: [AtomicU64; PROPAGATION_BUCKETS_MS.len() + 1],
    /// Sum of the recorded propagation times, in microseconds.
    propagation_sum_us: AtomicU64,
}

/// Upper bounds of the propagation histogram's buckets, in milliseconds.
const PROPAGATION_BUCKETS_MS: [u64; 10] = [1, 2, 5, 10, 25, 50, 100, 250, 1_000, 5_000];

impl Freshness {
    /// Fresh now, with `max_staleness` as the bound (`None`: never stale).
    pub fn new(max_staleness: Option<Duration>) -> Freshness {
        Freshness {
            origin: Instant::now(),
            last_ok_ms: AtomicU64::new(0),
            up: AtomicBool::new(true),
            max_staleness,
            propagation: Default::default(),
            propagation_sum_us: AtomicU64::new(0),
        }
    }

    /// Records how long a change took from its commit (the database's clock) to being applied
    /// on this node (also the database's clock, read right after).
    pub fn record_propagation(&self, took: Duration) {
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        let bucket = crate::server::metrics::bucket_index(&PROPAGATION_BUCKETS_MS, ms);
        self.propagation[bucket].fetch_add(1, Ordering::Relaxed);
        self.propagation_sum_us.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// `tokengate_config_propagation_seconds` in the Prometheus text format.
    pub fn render_propagation(&self) -> String {
        let mut out = String::new();
        let counts: Vec<u64> = self
            .propagation
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        crate::server::metrics::render_histogram(
            &mut out,
            "tokengate_config_propagation_seconds",
            "Time from a change's commit in the store to its being applied on this node.",
            PROPAGATION_BUCKETS_MS.iter().map(|&ms| ms as f64 / 1000.0),
            &counts,
            self.propagation_sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        );
        out
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Records a successful round trip to the store. After a lost connection the sync loop
    /// calls it only once it has resynchronized in full.
    pub fn mark_ok(&self) {
        self.last_ok_ms.store(self.now_ms(), Ordering::Relaxed);
        self.up.store(true, Ordering::Relaxed);
    }

    /// Records a failed attempt to reach the store.
    pub fn mark_down(&self) {
        self.up.store(false, Ordering::Relaxed);
    }

    /// Whether the last attempt to reach the store succeeded (`tokengate_store_up`).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Whether requests must be refused: a bound is set and the last successful round trip is
    /// older than it.
    #[inline]
    pub fn is_stale(&self) -> bool {
        let Some(max) = self.max_staleness else {
            return false;
        };
        let age_ms = self
            .now_ms()
            .saturating_sub(self.last_ok_ms.load(Ordering::Relaxed));
        age_ms > u64::try_from(max.as_millis()).unwrap_or(u64::MAX)
    }
}
