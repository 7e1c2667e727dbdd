//! Per-profile request quotas over long windows (SPEC §1 `quota`): at most N requests per
//! window of D days, windows counted in UTC from the Unix epoch.
//!
//! A [`QuotaCounter`] counts what this node admitted in the current window, and holds what the
//! store last said every other node (and this node's earlier runs) admitted in it. A request is
//! admitted while the two add up to less than N; the check is one compare-and-swap on one word
//! (window index and count packed together), so it is exact on one node and never waits on the
//! store. `crate::usage` sends the local counts to the store and brings the others back, at
//! least every second; the overshoot across nodes is bounded by what the other nodes admit
//! between two of those round trips (docs/policies.md).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::core::reject::Limited;

/// Bits of a packed word that hold the count; the window index takes the rest (24 bits: with
/// one-day windows, good for 45 000 years).
const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// Seconds in a day.
const DAY_S: u64 = 86_400;

fn pack(window: u64, count: u64) -> u64 {
    (window << COUNT_BITS) | count.min(COUNT_MASK)
}

fn unpack(word: u64) -> (u64, u64) {
    (word >> COUNT_BITS, word & COUNT_MASK)
}

/// The counts of one profile's quota on this node.
#[derive(Debug)]
pub struct QuotaCounter {
    /// Requests allowed per window (at most 2^40).
    limit: AtomicU64,
    /// The window, seconds (`per_days` × 86 400).
    window_s: u64,
    /// What this node admitted: window index and count, packed.
    local: AtomicU64,
    /// What the store says everyone else admitted: window index and count, packed.
    others: AtomicU64,
}

/// A quota's state at one moment, for `GET /v1/profiles/{id}/usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaUsage {
    /// Requests allowed per window.
    pub limit: u64,
    /// Requests counted in the current window (this node's plus the others' as last synced).
    pub used: u64,
    /// When the current window ends, seconds since the Unix epoch.
    pub window_ends_at_s: u64,
}

impl QuotaCounter {
    /// A counter of `limit` requests per `per_days` days (both at least 1), empty.
    pub fn new(limit: u64, per_days: u64) -> QuotaCounter {
        QuotaCounter {
            limit: AtomicU64::new(limit.clamp(1, COUNT_MASK)),
            window_s: per_days.max(1).saturating_mul(DAY_S),
            local: AtomicU64::new(0),
            others: AtomicU64::new(0),
        }
    }

    /// Whether a new configuration can keep this counter: the same window length (a new limit
    /// applies to the counts so far, see [`QuotaCounter::set_limit`]).
    pub fn has_window(&self, per_days: u64) -> bool {
        self.window_s == per_days.max(1).saturating_mul(DAY_S)
    }

    /// Applies a changed limit to the current window's counts.
    pub fn set_limit(&self, limit: u64) {
        self.limit
            .store(limit.clamp(1, COUNT_MASK), Ordering::Relaxed);
    }

    /// The window length, seconds.
    pub fn window_s(&self) -> u64 {
        self.window_s
    }

    /// The index of the window holding `now_s` (seconds since the epoch).
    pub fn window_at(&self, now_s: u64) -> u64 {
        now_s / self.window_s
    }

    /// The first second of window `window`.
    pub fn window_start_s(&self, window: u64) -> u64 {
        window.saturating_mul(self.window_s)
    }

    fn others_in(&self, window: u64) -> u64 {
        let (w, count) = unpack(self.others.load(Ordering::Relaxed));
        if w == window {
            count
        } else {
            0
        }
    }

    /// Admits one request at `now_ms` and counts it, or refuses with the seconds left until the
    /// window ends (at least 1) and the policy, for `Retry-After` and the `RateLimit` fields.
    pub fn check(&self, now_ms: u64) -> Result<(), Limited> {
        let now_s = now_ms / 1000;
        let window = self.window_at(now_s);
        let limit = self.limit.load(Ordering::Relaxed);
        let others = self.others_in(window);
        let mut current = self.local.load(Ordering::Relaxed);
        loop {
            let (w, count) = unpack(current);
            // A word from an earlier window starts over; one from a later window (another
            // thread's clock already past the boundary) is kept.
            let (w, count) = if w < window { (window, 0) } else { (w, count) };
            if others.saturating_add(count) >= limit {
                let ends = self.window_start_s(w.saturating_add(1));
                return Err(Limited {
                    retry_after_s: ends.saturating_sub(now_s).max(1),
                    limit,
                    window_s: self.window_s,
                });
            }
            match self.local.compare_exchange_weak(
                current,
                pack(w, count + 1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }

    /// What this node admitted in the window holding `now_s`: `(window index, count)`.
    pub fn local_at(&self, now_s: u64) -> (u64, u64) {
        let window = self.window_at(now_s);
        let (w, count) = unpack(self.local.load(Ordering::Relaxed));
        if w == window {
            (window, count)
        } else {
            (window, 0)
        }
    }

    /// Records what the store says everyone but this node's current run admitted in `window`.
    pub fn set_others(&self, window: u64, count: u64) {
        self.others.store(pack(window, count), Ordering::Relaxed);
    }

    /// Raises this node's count of `window` to `count` (never lowers it): for a counter rebuilt
    /// while this node run's row in the store already holds `count`.
    pub fn restore_local(&self, window: u64, count: u64) {
        let _ = self
            .local
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
                let (w, current) = unpack(word);
                (w < window || (w == window && current < count)).then(|| pack(window, count))
            });
    }

    /// The quota's state at `now_ms`.
    pub fn usage(&self, now_ms: u64) -> QuotaUsage {
        let now_s = now_ms / 1000;
        let (window, local) = self.local_at(now_s);
        QuotaUsage {
            limit: self.limit.load(Ordering::Relaxed),
            used: self.others_in(window).saturating_add(local),
            window_ends_at_s: self.window_start_s(window + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: u64 = DAY_S * 1000;

    #[test]
    fn admits_exactly_the_limit_then_refuses_until_the_window_ends() {
        let quota = QuotaCounter::new(3, 1);
        let t = 20_000 * DAY_MS + 3_600_000; // one hour into a day
        for _ in 0..3 {
            assert_eq!(quota.check(t), Ok(()));
        }
        let refused = quota.check(t).unwrap_err();
        assert_eq!(refused.retry_after_s, DAY_S - 3600);
        assert_eq!((refused.limit, refused.window_s), (3, DAY_S));
        assert_eq!(quota.usage(t).used, 3);
        assert_eq!(quota.usage(t).window_ends_at_s, 20_001 * DAY_S);
        // The next day starts over.
        assert_eq!(quota.check(20_001 * DAY_MS), Ok(()));
        assert_eq!(quota.usage(20_001 * DAY_MS).used, 1);
    }

    #[test]
    fn windows_of_many_days_start_at_the_epoch() {
        let quota = QuotaCounter::new(1, 30);
        let t = 20_005 * DAY_MS;
        assert_eq!(quota.window_at(t / 1000), 20_005 / 30);
        assert_eq!(quota.check(t), Ok(()));
        let refused = quota.check(t).unwrap_err();
        assert_eq!(refused.retry_after_s, (20_010 - 20_005) * DAY_S);
    }

    #[test]
    fn the_other_nodes_counts_take_their_part() {
        let quota = QuotaCounter::new(10, 1);
        let t = 20_000 * DAY_MS;
        let window = quota.window_at(t / 1000);
        quota.set_others(window, 8);
        assert!(quota.check(t).is_ok());
        assert!(quota.check(t).is_ok());
        assert!(quota.check(t).is_err());
        assert_eq!(quota.local_at(t / 1000), (window, 2));
        // Counts of another window do not count.
        quota.set_others(window - 1, 1_000);
        assert!(quota.check(t).is_ok());
        // A lower limit applies at once.
        quota.set_limit(2);
        assert!(quota.check(t).is_err());
        // A restored count only ever raises this node's count.
        quota.set_limit(10);
        quota.restore_local(window, 1);
        assert_eq!(quota.local_at(t / 1000), (window, 3));
        quota.restore_local(window, 5);
        assert_eq!(quota.local_at(t / 1000), (window, 5));
    }

    #[test]
    fn concurrent_checks_admit_exactly_the_limit() {
        let quota = std::sync::Arc::new(QuotaCounter::new(1000, 1));
        let t = 20_000 * DAY_MS;
        let admitted: usize = (0..4)
            .map(|_| {
                let quota = quota.clone();
                std::thread::spawn(move || (0..600).filter(|_| quota.check(t).is_ok()).count())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(admitted, 1000);
    }
}
