//! A connection's memos: its last verified JWT, its last auth token's digest, its last route
//! ([`RouteMemo`]) and its last admission ([`DecisionMemo`]). HTTP/1.1 serves one request at a
//! time per connection, so the memos need no lock; [`crate::core::gate::Gate`] reads and fills
//! them while it decides.

use std::sync::Arc;

use crate::core::cache::VerifiedJwt;
use crate::core::credential::Credential;
use crate::core::decision_memo::{Admission, DecisionMemo, Key};
use crate::core::gate::Admitted;
use crate::core::prefetch;
use crate::core::registry::Snapshot;
use crate::core::route_memo::RouteMemo;
use crate::core::token::{constant_time_eq, token_digest, TokenDigest};

/// A connection's last verified JWT, last auth token and last route ([`RouteMemo`]). Keep-alive
/// clients usually repeat one credential; comparing its bytes (in constant time) is cheaper than
/// digesting it: SHA-256 of an auth token was about 4 200 of the 18 100 instructions of a
/// request. A recalled JWT is re-checked exactly like a cache hit (generation, grace, activity,
/// `exp`/`nbf`); a recalled auth-token digest is looked up in the current snapshot like a fresh
/// one.
#[derive(Default)]
pub struct ConnectionMemo {
    pub(crate) last: Option<(Box<[u8]>, VerifiedJwt)>,
    pub(crate) last_token: Option<(Box<[u8]>, TokenDigest)>,
    /// The connection's last route.
    pub(crate) route: RouteMemo,
    /// The connection's last admission ([`DecisionMemo`]).
    pub(crate) decided: DecisionMemo,
    /// Whether this decision's credential was the one [`ConnectionMemo::recall`] or
    /// [`ConnectionMemo::token_digest`] remembered: with a route memo hit, the request repeats
    /// the last one, and only then is its admission remembered (a connection that carries many
    /// clients' requests, from a pooling proxy, never pays for filling a memo it will miss).
    pub(crate) repeated: bool,
}

impl ConnectionMemo {
    /// Starts loading what the next decision on this connection compares first: the last JWT's
    /// or auth token's bytes, the last caller and the last route's path (see [`prefetch`]).
    /// Call it some checks before the decision; a hint only.
    #[inline]
    pub fn prefetch(&self) {
        if let Some((bytes, verified)) = &self.last {
            prefetch::prefetch_bytes(bytes);
            prefetch::prefetch_line(Arc::as_ptr(&verified.caller));
        }
        if let Some((bytes, _)) = &self.last_token {
            prefetch::prefetch_bytes(bytes);
        }
        self.route.prefetch();
    }

    /// Whether the connection holds an admission to answer a repeat from ([`DecisionMemo`]):
    /// for tests and diagnostics; a decision is the same either way.
    pub fn remembers_admission(&self) -> bool {
        self.decided.caller().is_some()
    }

    pub(crate) fn recall(&mut self, token: &[u8]) -> Option<&VerifiedJwt> {
        let verified = match &self.last {
            Some((bytes, verified)) if constant_time_eq(bytes, token) => Some(verified),
            _ => None,
        };
        self.repeated = verified.is_some();
        verified
    }

    /// The SHA-256 digest of `token`: the remembered one when the connection sent the same
    /// token last time, else computed and remembered.
    pub(crate) fn token_digest(&mut self, token: &[u8]) -> TokenDigest {
        if let Some((bytes, digest)) = &self.last_token {
            if constant_time_eq(bytes, token) {
                self.repeated = true;
                return *digest;
            }
        }
        self.repeated = false;
        let digest = token_digest(token);
        self.last_token = Some((token.into(), digest));
        digest
    }

    pub(crate) fn remember(&mut self, token: &[u8], verified: &VerifiedJwt) {
        // A copy of its own, so connections on other threads never share its refcount.
        self.last = Some((token.into(), verified.private_copy()));
    }

    /// Remembers `admitted`, the answer to the request with `key` and `path`, in the decision
    /// memo. Its profile comes from the snapshot's token entry, which also gives the grace
    /// deadline; a JWT's verification is the one [`ConnectionMemo::remember`] copied for this
    /// connection. Nothing is remembered when the entry or the route's position is not found.
    pub(crate) fn remember_admission(
        &mut self,
        snapshot: &Snapshot,
        key: &Key<'_>,
        path: &str,
        admitted: &Admitted<'_, '_>,
    ) {
        let (digest, jwt) = match (key.credential, &self.last_token, &self.last) {
            (Credential::AuthToken(token), Some((bytes, digest)), _)
                if constant_time_eq(bytes, token) =>
            {
                (*digest, None)
            }
            (Credential::Bearer(token), _, Some((bytes, verified)))
                if constant_time_eq(bytes, token) =>
            {
                (verified.caller.key_digest, Some(verified))
            }
            _ => return,
        };
        let (Some(entry), Some((position, endpoint))) = (
            snapshot.profile_by_token(&digest),
            self.route.positions(key.epoch, key.method, path),
        ) else {
            return;
        };
        let Some(rest_at) = path.len().checked_sub(admitted.rest_path.len()) else {
            return;
        };
        self.decided.remember(
            key,
            path,
            Admission {
                profile: &entry.profile,
                valid_until_ms: entry.valid_until_ms,
                jwt,
                position,
                endpoint,
                rest_at,
            },
        );
    }
}
