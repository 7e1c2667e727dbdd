//! Per-profile rate limiting: a lock-free GCRA (the token bucket as one atomic timestamp). A
//! `cluster`-scoped limit admits this node's equal share of the requests (SPEC §1): the share
//! is worked out on each check from the live-node count, so it follows nodes joining and
//! leaving without losing the bucket's state.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::core::model::RateLimitScope;
use crate::core::reject::Limited;

/// Admits `requests` per `per_s` seconds (this node's share of them for a cluster scope),
/// allowing the whole window as a burst.
#[derive(Debug)]
pub struct RateLimiter {
    /// The configured requests per window (the whole cluster's, for a cluster scope).
    requests: u64,
    /// The window, seconds.
    per_s: u64,
    /// Node or cluster.
    scope: RateLimitScope,
    /// Theoretical arrival time of the next request, microseconds since the epoch.
    tat_us: AtomicU64,
}

impl RateLimiter {
    /// A limiter of `requests` per `per_s` seconds (both at least 1) with `scope`.
    pub fn new(requests: u64, per_s: u64, scope: RateLimitScope) -> Self {
        RateLimiter {
            requests: requests.max(1),
            per_s: per_s.max(1),
            scope,
            tat_us: AtomicU64::new(0),
        }
    }

    /// Whether this limiter was built for this configuration (a new snapshot may keep it).
    pub fn has_config(&self, requests: u64, per_s: u64, scope: RateLimitScope) -> bool {
        (self.requests, self.per_s, self.scope) == (requests.max(1), per_s.max(1), scope)
    }

    /// The requests this node admits per window when `live_nodes` nodes are live: all of them
    /// for a node scope, else `requests / live_nodes`, at least 1.
    pub fn share(&self, live_nodes: u32) -> u64 {
        match self.scope {
            RateLimitScope::Node => self.requests,
            RateLimitScope::Cluster => (self.requests / u64::from(live_nodes.max(1))).max(1),
        }
    }

    /// Admits one request at `now_ms` with `live_nodes` live nodes, or says how long to wait
    /// (whole seconds, at least 1) along with the policy for the `RateLimit` fields.
    pub fn check(&self, now_ms: u64, live_nodes: u32) -> Result<(), Limited> {
        let window_us = self.per_s.saturating_mul(1_000_000);
        let emission_us = (window_us / self.share(live_nodes)).max(1);
        let tolerance_us = window_us.saturating_sub(emission_us);
        let now_us = now_ms.saturating_mul(1000);
        let mut current = self.tat_us.load(Ordering::Relaxed);
        loop {
            let tat = current.max(now_us);
            let ahead = tat - now_us;
            if ahead > tolerance_us {
                let wait_us = ahead - tolerance_us;
                return Err(Limited {
                    retry_after_s: wait_us.div_ceil(1_000_000).max(1),
                    limit: self.requests,
                    window_s: self.per_s,
                });
            }
            let next = tat.saturating_add(emission_us);
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

    fn wait(result: Result<(), Limited>) -> Result<(), u64> {
        result.map_err(|limited| limited.retry_after_s)
    }

    #[test]
    fn admits_the_burst_then_refuses_until_refilled() {
        let limiter = RateLimiter::new(3, 1, RateLimitScope::Node);
        let t0 = 1_000_000;
        for _ in 0..3 {
            assert_eq!(wait(limiter.check(t0, 1)), Ok(()));
        }
        assert_eq!(wait(limiter.check(t0, 1)), Err(1));
        assert_eq!(wait(limiter.check(t0 + 334, 1)), Ok(()));
        assert!(limiter.check(t0 + 334, 1).is_err());
        assert_eq!(wait(limiter.check(t0 + 2000, 1)), Ok(()));
    }

    #[test]
    fn retry_after_counts_whole_seconds() {
        let limiter = RateLimiter::new(1, 10, RateLimitScope::Node);
        assert_eq!(wait(limiter.check(5_000, 1)), Ok(()));
        let refused = limiter.check(5_000, 1).unwrap_err();
        assert_eq!(
            refused,
            Limited {
                retry_after_s: 10,
                limit: 1,
                window_s: 10
            }
        );
        assert_eq!(wait(limiter.check(14_500, 1)), Err(1));
        assert_eq!(wait(limiter.check(15_000, 1)), Ok(()));
    }

    #[test]
    fn a_cluster_scope_admits_this_nodes_share() {
        let limiter = RateLimiter::new(10, 60, RateLimitScope::Cluster);
        assert_eq!(limiter.share(1), 10);
        assert_eq!(limiter.share(3), 3);
        assert_eq!(limiter.share(20), 1, "at least one");
        let t0 = 1_000_000;
        let admitted = (0..10).filter(|_| limiter.check(t0, 2).is_ok()).count();
        assert_eq!(admitted, 5, "two live nodes: half each");
        // The node scope ignores the live count.
        let node = RateLimiter::new(10, 60, RateLimitScope::Node);
        let admitted = (0..20).filter(|_| node.check(t0, 4).is_ok()).count();
        assert_eq!(admitted, 10);
    }
}
