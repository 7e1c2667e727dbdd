//! Per-profile, per-node rate limiting: a lock-free GCRA (the token bucket as one atomic timestamp).

use std::sync::atomic::{AtomicU64, Ordering};

/// Admits `requests` per `per_s` seconds, allowing the whole window as a burst.
#[derive(Debug)]
pub struct RateLimiter {
    /// Time one request "costs", in microseconds.
    emission_us: u64,
    /// How far ahead of now the theoretical arrival time may run: the burst.
    tolerance_us: u64,
    /// Theoretical arrival time of the next request, microseconds since the epoch.
    tat_us: AtomicU64,
    /// The configuration, to tell whether a new snapshot may keep this limiter.
    config: (u64, u64),
}

impl RateLimiter {
    /// A limiter of `requests` per `per_s` seconds (both at least 1).
    pub fn new(requests: u64, per_s: u64) -> Self {
        let requests = requests.max(1);
        let window_us = per_s.max(1).saturating_mul(1_000_000);
        let emission_us = (window_us / requests).max(1);
        RateLimiter {
            emission_us,
            tolerance_us: window_us.saturating_sub(emission_us),
            tat_us: AtomicU64::new(0),
            config: (requests, per_s),
        }
    }

    /// Whether this limiter was built for `requests` per `per_s`.
    pub fn has_config(&self, requests: u64, per_s: u64) -> bool {
        self.config == (requests, per_s)
    }

    /// Admits one request at `now_ms`, or says how many whole seconds to wait.
    pub fn check(&self, now_ms: u64) -> Result<(), u64> {
        let now_us = now_ms.saturating_mul(1000);
        let mut current = self.tat_us.load(Ordering::Relaxed);
        loop {
            let tat = current.max(now_us);
            let ahead = tat - now_us;
            if ahead > self.tolerance_us {
                let wait_us = ahead - self.tolerance_us;
                return Err(wait_us.div_ceil(1_000_000).max(1));
            }
            let next = tat.saturating_add(self.emission_us);
            match self.tat_us.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_the_burst_then_refuses_until_refilled() {
        let limiter = RateLimiter::new(3, 1);
        let t0 = 1_000_000;
        for _ in 0..3 {
            assert_eq!(limiter.check(t0), Ok(()));
        }
        assert_eq!(limiter.check(t0), Err(1));
        assert_eq!(limiter.check(t0 + 334), Ok(()));
        assert!(limiter.check(t0 + 334).is_err());
        assert_eq!(limiter.check(t0 + 2000), Ok(()));
    }

    #[test]
    fn retry_after_counts_whole_seconds() {
        let limiter = RateLimiter::new(1, 10);
        assert_eq!(limiter.check(5_000), Ok(()));
        assert_eq!(limiter.check(5_000), Err(10));
        assert_eq!(limiter.check(14_500), Err(1));
        assert_eq!(limiter.check(15_000), Ok(()));
    }
}
