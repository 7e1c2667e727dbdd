//! The verified-token memo (moka): a repeated valid JWT costs a digest and a lookup, no signature work.
//!
//! Keys are the SHA-256 of the token's exact bytes, so only the same token can hit. A hit
//! only says the signature and claims were good once: the gate still checks the profile's
//! current generation, its grace deadline, and `exp`/`nbf` on every request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

use crate::core::registry::{BuildDigestHasher, DigestKey};
use crate::core::token::TokenDigest;

/// Longest time an entry lives, even for a token without `exp`.
pub const MAX_ENTRY_TTL: Duration = Duration::from_secs(3600);

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedJwt {
    /// Digest of the key claim (the auth token the JWT names).
    pub key_digest: TokenDigest,
    /// Generation of the profile at verification time.
    pub generation: u64,
    /// `exp`, seconds since the epoch.
    pub exp: Option<i64>,
    /// `nbf`, seconds since the epoch.
    pub nbf: Option<i64>,
    /// The `name` claim.
    pub caller_name: Option<Box<str>>,
    /// How long the entry may live: until `exp` plus leeway, at most [`MAX_ENTRY_TTL`].
    pub ttl: Duration,
}

impl VerifiedJwt {
    /// The entry lifetime for a token with `exp` verified at `now_s` with `leeway_s`.
    pub fn ttl_for(exp: Option<i64>, leeway_s: i64, now_s: i64) -> Duration {
        match exp {
            Some(exp) => {
                let left = exp.saturating_add(leeway_s).saturating_sub(now_s);
                Duration::from_secs(u64::try_from(left).unwrap_or(0)).min(MAX_ENTRY_TTL)
            }
            None => MAX_ENTRY_TTL,
        }
    }
}

struct UntilExp;

impl Expiry<DigestKey, Arc<VerifiedJwt>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &DigestKey,
        value: &Arc<VerifiedJwt>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The memo of verified tokens.
#[derive(Clone)]
pub struct TokenCache {
    entries: Cache<DigestKey, Arc<VerifiedJwt>, BuildDigestHasher>,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens; `None` when `capacity` is 0 (caching off).
    pub fn new(capacity: u64) -> Option<TokenCache> {
        if capacity == 0 {
            return None;
        }
        let entries = Cache::builder()
            .max_capacity(capacity)
            .expire_after(UntilExp)
            .build_with_hasher(BuildDigestHasher::default());
        Some(TokenCache { entries })
    }

    /// The verification memoized for a token digest.
    #[inline]
    pub fn get(&self, token: &TokenDigest) -> Option<Arc<VerifiedJwt>> {
        self.entries.get(&DigestKey(*token))
    }

    /// Memoizes a successful verification.
    pub fn insert(&self, token: TokenDigest, verified: Arc<VerifiedJwt>) {
        if !verified.ttl.is_zero() {
            self.entries.insert(DigestKey(token), verified);
        }
    }

    /// Approximate number of entries.
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// Runs moka's pending maintenance (tests and measurements only).
    pub fn run_pending_tasks(&self) {
        self.entries.run_pending_tasks();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(ttl: Duration) -> Arc<VerifiedJwt> {
        Arc::new(VerifiedJwt {
            key_digest: [1; 32],
            generation: 3,
            exp: None,
            nbf: None,
            caller_name: None,
            ttl,
        })
    }

    #[test]
    fn zero_capacity_turns_caching_off() {
        assert!(TokenCache::new(0).is_none());
    }

    #[test]
    fn hits_only_the_same_digest() {
        let cache = TokenCache::new(10).unwrap();
        cache.insert([7; 32], verified(MAX_ENTRY_TTL));
        assert_eq!(cache.get(&[7; 32]).unwrap().generation, 3);
        let mut other = [7; 32];
        other[31] = 8;
        assert!(cache.get(&other).is_none());
    }

    #[test]
    fn already_expired_tokens_are_not_kept() {
        let cache = TokenCache::new(10).unwrap();
        cache.insert([9; 32], verified(Duration::ZERO));
        assert!(cache.get(&[9; 32]).is_none());
    }

    #[test]
    fn ttl_follows_exp_with_leeway_and_is_capped() {
        assert_eq!(
            VerifiedJwt::ttl_for(Some(1_100), 60, 1_000),
            Duration::from_secs(160)
        );
        assert_eq!(VerifiedJwt::ttl_for(Some(900), 60, 1_000), Duration::ZERO);
        assert_eq!(VerifiedJwt::ttl_for(None, 60, 1_000), MAX_ENTRY_TTL);
        assert_eq!(VerifiedJwt::ttl_for(Some(i64::MAX), 60, 0), MAX_ENTRY_TTL);
    }
}
