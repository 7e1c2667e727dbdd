//! A connection's last admission. A keep-alive client usually sends one credential to one
//! endpoint over and over; under an unchanged snapshot, the same credential, method, path and
//! client address get the same answer from every step of the decision that does not read the
//! clock or a counter. So the last admitted request's answer is kept, and the next request that
//! matches it byte for byte skips the profile lookup, the route and the grant checks.
//!
//! What a memo hit still does, exactly as a fresh decision does:
//! - the clock checks: the token's grace deadline after a refresh ([`TokenEntry::is_live`]) and a
//!   JWT's `exp`/`nbf` with the profile's leeway ([`jwt::check_times`]);
//! - the counters: the profile's rate limit and quota.
//!
//! Under any other snapshot ([`Snapshot::epoch`]) the memo misses, so an admin change (a refresh,
//! a disabled profile, a revoked grant) applies to the very next request. Only admissions are
//! kept: a refused request is decided afresh every time.

use std::net::IpAddr;
use std::sync::Arc;

use http::Method;

use crate::core::cache::VerifiedJwt;
use crate::core::credential::Credential;
use crate::core::jwt;
use crate::core::registry::{CompiledProfile, Snapshot};
use crate::core::route::{CompiledCollection, CompiledEndpoint};
use crate::core::route_memo::MAX_PATH_LEN;
use crate::core::token::constant_time_eq;

/// The last admission on a connection, when there was one.
#[derive(Default)]
pub struct DecisionMemo {
    last: Option<Decided>,
}

/// What the credential was, and its bytes (a Basic auth token as decoded).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    AuthToken,
    Bearer,
}

struct Decided {
    epoch: u64,
    kind: Kind,
    credential: Vec<u8>,
    method: Method,
    path: String,
    peer: IpAddr,
    /// The profile, held so a hit needs no lookup; the same one the snapshot of `epoch` holds.
    profile: Arc<CompiledProfile>,
    /// The token's grace deadline, Unix ms ([`TokenEntry::valid_until_ms`]).
    valid_until_ms: Option<u64>,
    /// The JWT's verification, for a bearer credential.
    jwt: Option<VerifiedJwt>,
    /// The collection's position in the snapshot and the endpoint's index in it.
    position: u32,
    endpoint: usize,
    /// Where the path after the collection segment starts.
    rest_at: usize,
}

/// A remembered admission that still holds: the route, from the snapshot. The caller comes
/// from [`DecisionMemo::caller`].
pub struct Hit<'s, 'p> {
    /// The collection.
    pub collection: &'s CompiledCollection,
    /// The endpoint.
    pub endpoint: &'s CompiledEndpoint,
    /// The path after the collection segment.
    pub rest_path: &'p str,
}

/// An admission to remember: what [`DecisionMemo::remember`] needs beyond the request.
pub struct Admission<'a> {
    /// The caller's profile, as the snapshot holds it.
    pub profile: &'a Arc<CompiledProfile>,
    /// The token's grace deadline, Unix ms.
    pub valid_until_ms: Option<u64>,
    /// The JWT's verification, for a bearer credential: a copy private to the connection
    /// ([`VerifiedJwt::private_copy`]), which the memo clones, so that its refcount is never
    /// touched by another thread.
    pub jwt: Option<&'a VerifiedJwt>,
    /// The collection's position in the snapshot and the endpoint's index in it.
    pub position: u32,
    /// The endpoint's index in the collection.
    pub endpoint: usize,
    /// Where the path after the collection segment starts, in bytes.
    pub rest_at: usize,
}

fn split<'a>(credential: &'a Credential<'_>) -> (Kind, &'a [u8]) {
    match credential {
        Credential::AuthToken(token) => (Kind::AuthToken, token),
        Credential::Bearer(token) => (Kind::Bearer, token),
    }
}

/// The key a decision is memoized under: everything besides the clock and the counters that a
/// decision reads.
pub struct Key<'k> {
    /// The snapshot's epoch.
    pub epoch: u64,
    /// The request's credential.
    pub credential: &'k Credential<'k>,
    /// The request method.
    pub method: &'k Method,
    /// The client address (after `--trusted-proxies`).
    pub peer: IpAddr,
}

impl DecisionMemo {
    /// The last admission, when it was of a request with `key` (the credential compared in
    /// constant time) and still holds at `now_ms` (Unix ms) as a fresh decision would find: the
    /// token's grace deadline not passed, and a JWT's `exp` and `nbf` (RFC 7519 §4.1.4, §4.1.5)
    /// within the profile's leeway. `None` otherwise: then decide afresh, which also gives the
    /// refusal's code. The rate limit and the quota are the caller's to check.
    #[inline]
    pub fn check<'s, 'p>(
        &self,
        key: &Key<'_>,
        snapshot: &'s Snapshot,
        path: &'p str,
        now_ms: u64,
    ) -> Option<Hit<'s, 'p>> {
        let last = self.last.as_ref()?;
        let (kind, bytes) = split(key.credential);
        let same = last.epoch == key.epoch
            && last.kind == kind
            && last.peer == key.peer
            && last.method == *key.method
            && last.path == path
            && constant_time_eq(&last.credential, bytes);
        if !same || last.valid_until_ms.is_some_and(|until| now_ms >= until) {
            return None;
        }
        if let Some(verified) = &last.jwt {
            let now_s = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
            let leeway_s = last.profile.leeway_s();
            jwt::check_times(verified.exp(), verified.nbf(), leeway_s, now_s).ok()?;
        }
        let collection = snapshot.collection_at(last.position)?;
        let endpoint = collection.endpoints.get(last.endpoint)?;
        let rest_path = path.get(last.rest_at..)?;
        Some(Hit {
            collection,
            endpoint,
            rest_path,
        })
    }

    /// The last admission's profile and JWT verification (for a bearer credential).
    pub fn caller(&self) -> Option<(&CompiledProfile, Option<&VerifiedJwt>)> {
        self.last
            .as_ref()
            .map(|last| (&*last.profile, last.jwt.as_ref()))
    }

    /// Remembers an admission of the request with `key` and normalized `path`, reusing the memo's buffers. A path
    /// longer than [`MAX_PATH_LEN`] or the empty default snapshot (epoch 0) is not remembered,
    /// and what was remembered before is forgotten.
    pub fn remember(&mut self, key: &Key<'_>, path: &str, admission: Admission<'_>) {
        if key.epoch == 0 || path.len() > MAX_PATH_LEN {
            self.last = None;
            return;
        }
        let (kind, bytes) = split(key.credential);
        let jwt = admission.jwt.cloned();
        match &mut self.last {
            Some(last) => {
                last.epoch = key.epoch;
                last.kind = kind;
                last.credential.clear();
                last.credential.extend_from_slice(bytes);
                last.method.clone_from(key.method);
                last.path.clear();
                last.path.push_str(path);
                last.peer = key.peer;
                last.profile.clone_from(admission.profile);
                last.valid_until_ms = admission.valid_until_ms;
                last.jwt = jwt;
                last.position = admission.position;
                last.endpoint = admission.endpoint;
                last.rest_at = admission.rest_at;
            }
            None => {
                self.last = Some(Decided {
                    epoch: key.epoch,
                    kind,
                    credential: bytes.to_vec(),
                    method: key.method.clone(),
                    path: path.to_owned(),
                    peer: key.peer,
                    profile: admission.profile.clone(),
                    valid_until_ms: admission.valid_until_ms,
                    jwt,
                    position: admission.position,
                    endpoint: admission.endpoint,
                    rest_at: admission.rest_at,
                })
            }
        }
    }
}
