//! The refusal memo: JWTs the current registry snapshot has already refused for good, so that a
//! client (or a flood) repeating one is refused again without the SHA-256, the cache lookup, the
//! parse or the signature check.
//!
//! Only *settled* refusals are kept: those decided by the token's bytes and the snapshot alone
//! (malformed, no key claim, a key claim naming no profile, a disabled profile, the wrong
//! algorithm, a bad signature), all `invalid_token`. Anything that depends on the clock (`exp`,
//! `nbf`, a grace deadline, a lifetime rule) is decided afresh every time. Each entry records the
//! snapshot's epoch, and a lookup under any other snapshot misses, so an admin change (a new
//! profile, a new key) applies to the very next request: the memo never answers differently
//! from a full verification. This is Kong's `neg_ttl` without the TTL.
//!
//! A fixed table of [`SETS`] sets of two slots, each slot holding one token's exact bytes (up to
//! [`MAX_TOKEN_LEN`], in an allocation of its own), compared in constant time. A set's lock and
//! slot pointers are one cache line, which the front door has on its way from memory before
//! the lookup ([`RefusalMemo::prefetch_set`]); the tokens' bytes are not prefetched. A new
//! refusal takes a free or stale slot of its set, else the older of the two. Memory is bounded
//! (at most `2 * SETS * MAX_TOKEN_LEN` bytes of tokens), and refused tokens never touch the
//! verified-token cache, so a flood of them cannot push valid tokens out.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::core::prefetch::prefetch_line;
use crate::core::token::constant_time_eq;

/// Sets of two slots in the table (a power of two): room for 8 192 refused tokens.
pub const SETS: usize = 4096;

/// Tokens longer than this (bytes) are not memoized: a typical RS256 JWT is 600–900 bytes.
pub const MAX_TOKEN_LEN: usize = 2048;

/// One remembered refusal: the token's bytes and the epoch of the snapshot that refused it.
struct Slot {
    epoch: u64,
    token: Box<[u8]>,
}

/// Two slots, and which one the next refusal replaces when both hold current refusals.
#[derive(Default)]
struct Set {
    ways: [Option<Slot>; 2],
    older: usize,
}

/// A set (its slots' pointers) and its lock on a cache line of their own, so one prefetch
/// brings both.
#[repr(align(64))]
#[derive(Default)]
struct SetCell(Mutex<Set>);

/// The memo of settled refusals.
pub struct RefusalMemo {
    sets: Box<[SetCell]>,
    /// Per-process seed for the set index, so nobody can predict which tokens share a set.
    seed: u64,
}

impl Default for RefusalMemo {
    fn default() -> Self {
        RefusalMemo::new()
    }
}

impl RefusalMemo {
    /// An empty memo of [`SETS`] sets.
    pub fn new() -> RefusalMemo {
        RefusalMemo {
            sets: (0..SETS).map(|_| SetCell::default()).collect(),
            seed: RandomState::new().hash_one(0u64),
        }
    }

    /// The index of `token`'s set: chosen by its length and last 8 bytes (the end of the
    /// signature, which differs between any two signed tokens), mixed with the seed.
    #[inline]
    fn index(&self, token: &[u8]) -> usize {
        let mut tail = [0u8; 8];
        let n = token.len().min(8);
        tail[..n].copy_from_slice(&token[token.len() - n..]);
        let mixed = (u64::from_le_bytes(tail) ^ self.seed ^ token.len() as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // The top bits of the product are the well-mixed ones; SETS is a power of two.
        (mixed >> (64 - SETS.trailing_zeros())) as usize
    }

    /// The set for `token`, locked.
    fn set(&self, token: &[u8]) -> MutexGuard<'_, Set> {
        // Nothing panics while a set is locked; a poisoned one is still consistent.
        self.sets[self.index(token)]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts loading the cache line of `token`'s set without waiting for it, so that a
    /// [`RefusalMemo::contains`] a few checks later finds it in cache: a flood of rotating
    /// tokens otherwise waits on memory at every lookup (`perf`, 500 tokens, wrk -c32:
    /// 0.16-0.26 us of about 11 a request in the lock's first touch of the line; callgrind
    /// counts instructions, so it cannot see this). A hint only: nothing else changes.
    #[inline]
    pub fn prefetch_set(&self, token: &[u8]) {
        if token.len() <= MAX_TOKEN_LEN {
            prefetch_line(&self.sets[self.index(token)] as *const SetCell);
        }
    }

    /// Whether `token` was refused under the snapshot of `epoch`.
    #[inline]
    pub fn contains(&self, token: &[u8], epoch: u64) -> bool {
        if token.len() > MAX_TOKEN_LEN {
            return false;
        }
        let set = self.set(token);
        set.ways
            .iter()
            .flatten()
            .any(|slot| slot.epoch == epoch && constant_time_eq(&slot.token, token))
    }

    /// Remembers that the snapshot of `epoch` refused `token` for good (a settled refusal), in
    /// a free or stale slot of its set, else in place of the older refusal there. Tokens over
    /// [`MAX_TOKEN_LEN`] bytes are not kept.
    pub fn insert(&self, token: &[u8], epoch: u64) {
        if token.len() > MAX_TOKEN_LEN {
            return;
        }
        let entry = Some(Slot {
            epoch,
            token: token.into(),
        });
        let previous = {
            let mut set = self.set(token);
            let free_or_stale = set
                .ways
                .iter()
                .position(|way| way.as_ref().is_none_or(|slot| slot.epoch != epoch));
            let way = free_or_stale.unwrap_or_else(|| {
                let older = set.older;
                set.older = 1 - older;
                older
            });
            std::mem::replace(&mut set.ways[way], entry)
        };
        drop(previous); // freed outside the lock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_found_under_its_epoch_only() {
        let memo = RefusalMemo::new();
        let token = b"eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl";
        assert!(!memo.contains(token, 1));
        memo.insert(token, 1);
        assert!(memo.contains(token, 1));
        assert!(!memo.contains(token, 2), "another snapshot decides afresh");
        memo.insert(token, 2);
        assert!(memo.contains(token, 2));
        assert!(
            !memo.contains(token, 1),
            "the newer epoch replaced the entry"
        );
    }

    #[test]
    fn only_the_same_bytes_hit() {
        let memo = RefusalMemo::new();
        let token = b"aaaa.bbbb.signature-tail";
        memo.insert(token, 7);
        // Same length and same last 8 bytes: the same slot, but other bytes.
        assert!(!memo.contains(b"aaaa.bbbc.signature-tail", 7));
        assert!(!memo.contains(b"aaaa.bbbb.signature-tai", 7));
        assert!(!memo.contains(b"", 7));
        assert!(memo.contains(token, 7));
    }

    #[test]
    fn a_set_holds_two_and_a_third_replaces_the_older() {
        let memo = RefusalMemo::new();
        // Same length and tail: one set.
        memo.insert(b"first.x.same-tail", 3);
        memo.insert(b"secnd.x.same-tail", 3);
        assert!(memo.contains(b"first.x.same-tail", 3));
        assert!(memo.contains(b"secnd.x.same-tail", 3));
        memo.insert(b"third.x.same-tail", 3);
        assert!(!memo.contains(b"first.x.same-tail", 3));
        assert!(memo.contains(b"secnd.x.same-tail", 3));
        assert!(memo.contains(b"third.x.same-tail", 3));
        memo.insert(b"forth.x.same-tail", 3);
        assert!(!memo.contains(b"secnd.x.same-tail", 3));
        assert!(memo.contains(b"third.x.same-tail", 3));
        assert!(memo.contains(b"forth.x.same-tail", 3));
    }

    #[test]
    fn a_stale_slot_is_reused_before_a_current_one() {
        let memo = RefusalMemo::new();
        memo.insert(b"first.x.same-tail", 1);
        memo.insert(b"secnd.x.same-tail", 2);
        memo.insert(b"third.x.same-tail", 2);
        assert!(memo.contains(b"secnd.x.same-tail", 2));
        assert!(memo.contains(b"third.x.same-tail", 2));
        assert!(!memo.contains(b"first.x.same-tail", 1));
    }

    #[test]
    fn tokens_over_the_limit_are_not_kept() {
        let memo = RefusalMemo::new();
        let long = vec![b'a'; MAX_TOKEN_LEN + 1];
        memo.insert(&long, 1);
        assert!(!memo.contains(&long, 1));
        let longest = vec![b'a'; MAX_TOKEN_LEN];
        memo.insert(&longest, 1);
        assert!(memo.contains(&longest, 1));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_set_is_one_cache_line() {
        const LINE: usize = 64;
        assert_eq!(std::mem::size_of::<SetCell>(), LINE);
        assert_eq!(std::mem::align_of::<SetCell>(), LINE);
    }

    #[test]
    fn prefetching_changes_nothing() {
        let memo = RefusalMemo::new();
        let token = b"aaaa.bbbb.signature-tail";
        memo.prefetch_set(token);
        assert!(!memo.contains(token, 1));
        memo.insert(token, 1);
        memo.prefetch_set(token);
        memo.prefetch_set(b"");
        memo.prefetch_set(&vec![b'a'; MAX_TOKEN_LEN + 1]);
        assert!(memo.contains(token, 1));
    }

    #[test]
    fn short_tokens_index_without_panicking() {
        let memo = RefusalMemo::new();
        for len in 0..10 {
            let token = vec![b'x'; len];
            memo.insert(&token, 1);
            assert!(memo.contains(&token, 1));
        }
    }
}
