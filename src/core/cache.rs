//! The verified-token memo (moka): a repeated valid JWT costs a digest and a lookup, no signature work.
//!
//! Keys are the first 128 bits of the SHA-256 of the token's exact bytes, so only the same
//! token can hit. A hit only says the signature and claims were good once: the gate still checks
//! the profile's current generation, its grace deadline, and `exp`/`nbf` on every request.
//!
//! Sized for a million tokens in about 300 bytes each, most of it moka's own bookkeeping:
//! - The key is 16 bytes, not 32. A collision could only make a token stand for another
//!   token that was verified: finding one for a token someone else holds is a second preimage
//!   (2^128 work); a collision between two tokens the attacker made (2^64 work) gains nothing,
//!   since the one that was verified is the attacker's own and speaks for its own profile.
//! - The value is 32 bytes inline: the generation, `exp`, `nbf` and an [`Arc`] to the
//!   [`Caller`] (key-claim digest and `name`), which every JWT naming the same auth token
//!   with the same `name` shares (the registry's token entry keeps the last one).
//! - No per-entry expiry (a timer node per entry): the gate checks `exp` on every hit, so an
//!   expired token is refused from the cache as it is without it, and the gate then drops the
//!   entry; capacity bounds memory. This is how Envoy's `jwt_authn` cache works, too.

use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use moka::sync::Cache;

use crate::core::registry::DigestHasher;
use crate::core::token::TokenDigest;

/// Whom a verified JWT speaks for: the auth token it names and its `name` claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// SHA-256 of the key claim (the auth token the JWT names).
    pub key_digest: TokenDigest,
    /// The `name` claim.
    pub name: Option<Box<str>>,
}

/// The last [`Caller`] made for one auth token, so that the JWTs naming it with the same
/// `name` share one copy.
#[derive(Default)]
pub struct CallerSlot(ArcSwapOption<Caller>);

impl CallerSlot {
    /// The shared caller for `key_digest` and `name`: the last one made when it matches, else
    /// a new one, kept for the next.
    pub fn caller(&self, key_digest: &TokenDigest, name: Option<Box<str>>) -> Arc<Caller> {
        if let Some(last) = self.0.load_full() {
            if last.key_digest == *key_digest && last.name == name {
                return last;
            }
        }
        let made = Arc::new(Caller {
            key_digest: *key_digest,
            name,
        });
        self.0.store(Some(made.clone()));
        made
    }
}

/// What a successful verification established: 32 bytes, cloned on every cache hit (one
/// reference count).
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedJwt {
    /// The auth token the JWT names and its `name` claim.
    pub caller: Arc<Caller>,
    /// Generation of the profile at verification time.
    pub generation: u64,
    /// `exp`, seconds since the epoch; `i64::MAX` for none (the same: never expires).
    exp: i64,
    /// `nbf`, seconds since the epoch; `i64::MIN` for none (the same: always valid).
    nbf: i64,
}

impl VerifiedJwt {
    /// A verification of a JWT naming `caller`, checked against the profile at `generation`.
    pub fn new(caller: Arc<Caller>, generation: u64, exp: Option<i64>, nbf: Option<i64>) -> Self {
        VerifiedJwt {
            caller,
            generation,
            exp: exp.unwrap_or(i64::MAX),
            nbf: nbf.unwrap_or(i64::MIN),
        }
    }

    /// `exp`, seconds since the epoch.
    pub fn exp(&self) -> Option<i64> {
        (self.exp != i64::MAX).then_some(self.exp)
    }

    /// `nbf`, seconds since the epoch.
    pub fn nbf(&self) -> Option<i64> {
        (self.nbf != i64::MIN).then_some(self.nbf)
    }

    /// The `name` claim.
    pub fn caller_name(&self) -> Option<&str> {
        self.caller.name.as_deref()
    }

    /// The same verification with a [`Caller`] of its own (its own reference count), for a
    /// copy that one connection keeps.
    pub fn private_copy(&self) -> Self {
        VerifiedJwt {
            caller: Arc::new(Caller::clone(&self.caller)),
            ..self.clone()
        }
    }
}

/// The cache key: the first 16 bytes of the token's SHA-256.
#[derive(Clone, Copy, PartialEq, Eq)]
struct CacheKey([u8; 16]);

impl CacheKey {
    fn of(token: &TokenDigest) -> CacheKey {
        let mut key = [0u8; 16];
        key.copy_from_slice(&token[..16]);
        CacheKey(key)
    }
}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// The memo of verified tokens.
#[derive(Clone)]
pub struct TokenCache {
    entries: Cache<CacheKey, VerifiedJwt, BuildHasherDefault<DigestHasher>>,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens; `None` when `capacity` is 0 (caching off).
    pub fn new(capacity: u64) -> Option<TokenCache> {
        if capacity == 0 {
            return None;
        }
        let entries = Cache::builder()
            .max_capacity(capacity)
            .build_with_hasher(BuildHasherDefault::default());
        Some(TokenCache { entries })
    }

    /// The verification memoized for a token, by the token's SHA-256.
    #[inline]
    pub fn get(&self, token: &TokenDigest) -> Option<VerifiedJwt> {
        self.entries.get(&CacheKey::of(token))
    }

    /// Memoizes a successful verification of the token with SHA-256 `token`.
    pub fn insert(&self, token: &TokenDigest, verified: VerifiedJwt) {
        self.entries.insert(CacheKey::of(token), verified);
    }

    /// Forgets the verification of the token with SHA-256 `token`.
    pub fn invalidate(&self, token: &TokenDigest) {
        self.entries.invalidate(&CacheKey::of(token));
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

    fn verified(generation: u64) -> VerifiedJwt {
        let caller = Arc::new(Caller {
            key_digest: [1; 32],
            name: Some("Ann".into()),
        });
        VerifiedJwt::new(caller, generation, Some(2_000), None)
    }

    #[test]
    fn zero_capacity_turns_caching_off() {
        assert!(TokenCache::new(0).is_none());
    }

    #[test]
    fn hits_only_the_same_digest() {
        let cache = TokenCache::new(10).unwrap();
        cache.insert(&[7; 32], verified(3));
        assert_eq!(cache.get(&[7; 32]).unwrap().generation, 3);
        let mut other = [7; 32];
        other[15] = 8;
        assert!(cache.get(&other).is_none());
    }

    #[test]
    fn an_invalidated_token_is_gone() {
        let cache = TokenCache::new(10).unwrap();
        cache.insert(&[7; 32], verified(3));
        cache.invalidate(&[7; 32]);
        assert!(cache.get(&[7; 32]).is_none());
    }

    #[test]
    fn absent_times_read_back_as_absent() {
        let v = verified(1);
        assert_eq!((v.exp(), v.nbf()), (Some(2_000), None));
        let caller = v.caller.clone();
        let v = VerifiedJwt::new(caller, 1, None, Some(-5));
        assert_eq!((v.exp(), v.nbf()), (None, Some(-5)));
        assert_eq!(v.caller_name(), Some("Ann"));
    }

    #[test]
    fn a_slot_shares_one_caller_per_token_and_name() {
        let slot = CallerSlot::default();
        let a = slot.caller(&[1; 32], Some("Ann".into()));
        let b = slot.caller(&[1; 32], Some("Ann".into()));
        assert!(Arc::ptr_eq(&a, &b));
        let c = slot.caller(&[1; 32], Some("Bob".into()));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.name.as_deref(), Some("Bob"));
        let d = slot.caller(&[2; 32], Some("Bob".into()));
        assert_eq!(d.key_digest, [2; 32]);
        assert!(!Arc::ptr_eq(&c, &d));
    }

    #[test]
    fn a_private_copy_is_equal_but_not_shared() {
        let v = verified(4);
        let copy = v.private_copy();
        assert_eq!(copy, v);
        assert!(!Arc::ptr_eq(&copy.caller, &v.caller));
    }
}
