//! The decision: credential → profile → verify → IP → route → collection → rate limit → endpoint.
//!
//! Pure over its inputs: a header map, a method and path, the peer address, a clock and a
//! registry snapshot. No I/O; the server, the bench harness and the tests all call this.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use http::{HeaderMap, Method};

use crate::core::cache::{TokenCache, VerifiedJwt};
pub use crate::core::connection_memo::ConnectionMemo;
use crate::core::credential::{self, Credential};
use crate::core::decision_memo::{Hit, Key};
use crate::core::jwt::{self, MAX_SIGNATURE_LEN};
use crate::core::model::JwtAlg;
use crate::core::refusals::RefusalMemo;
use crate::core::registry::{CompiledAuth, CompiledProfile, Snapshot, VerifyKey};
use crate::core::reject::Reject;
use crate::core::route::{CompiledCollection, CompiledEndpoint};
use crate::core::route_memo::RouteMemo;
use crate::core::token::{token_digest, TokenDigest};

/// What the gate is asked about.
#[derive(Debug, Clone, Copy)]
pub struct Request<'r> {
    /// The request method.
    pub method: &'r Method,
    /// The request path (no query).
    pub path: &'r str,
    /// The request headers.
    pub headers: &'r HeaderMap,
    /// The peer's address.
    pub peer: IpAddr,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub now_ms: u64,
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// Raw auth token.
    Token,
    /// Signed JWT.
    Jwt,
}

impl AuthKind {
    /// The `X-Tokengate-Auth` value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::Token => "token",
            AuthKind::Jwt => "jwt",
        }
    }
}

/// Whether the verified-token cache answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// No JWT, or caching is off.
    NotUsed,
    /// The token was found verified.
    Hit,
    /// The token needed full verification.
    Miss,
}

/// An authenticated caller.
#[derive(Clone)]
pub struct Identity<'s> {
    /// The caller's access profile.
    pub profile: &'s CompiledProfile,
    /// How it authenticated.
    pub auth: AuthKind,
    /// The JWT verification, when a JWT was used (carries the caller name).
    pub jwt: Option<VerifiedJwt>,
}

impl Identity<'_> {
    /// The JWT `name` claim, when present.
    pub fn caller_name(&self) -> Option<&str> {
        self.jwt.as_ref().and_then(|j| j.caller_name())
    }
}

/// An admitted request: who, and which endpoint.
pub struct Admitted<'s, 'r> {
    /// The authenticated caller.
    pub identity: Identity<'s>,
    /// The matched collection.
    pub collection: &'s CompiledCollection,
    /// The matched endpoint.
    pub endpoint: &'s CompiledEndpoint,
    /// The request path after the collection segment (forwarded to upstreams).
    pub rest_path: &'r str,
}

/// The gate's answer, with how the cache was used (for metrics).
pub struct Verdict<T> {
    /// Admitted, or the reason for refusal.
    pub result: Result<T, Reject>,
    /// Cache use while deciding.
    pub cache: CacheUse,
}

/// Decides requests against registry snapshots, memoizing verified JWTs and settled refusals.
pub struct Gate {
    cache: Option<TokenCache>,
    /// JWTs the current snapshot refused for good; on whenever the cache is.
    refusals: Option<RefusalMemo>,
    /// How many nodes are live (SPEC §6), for cluster-scoped rate limits; 1 alone.
    live_nodes: AtomicU32,
}

impl Gate {
    /// A gate whose cache holds at most `cache_capacity` tokens (0 turns it off, and with it
    /// the memo of refusals: every JWT is then verified from scratch).
    pub fn new(cache_capacity: u64) -> Gate {
        let cache = TokenCache::new(cache_capacity);
        Gate {
            refusals: cache.as_ref().map(|_| RefusalMemo::new()),
            cache,
            live_nodes: AtomicU32::new(1),
        }
    }

    /// Sets the live-node count that cluster-scoped rate limits divide by (at least 1).
    pub fn set_live_nodes(&self, live: u32) {
        self.live_nodes.store(live.max(1), Ordering::Relaxed);
    }

    /// The live-node count cluster-scoped rate limits divide by.
    pub fn live_nodes(&self) -> u32 {
        self.live_nodes.load(Ordering::Relaxed)
    }

    /// The verified-token cache, if on.
    pub fn cache(&self) -> Option<&TokenCache> {
        self.cache.as_ref()
    }

    /// The memo of settled refusals, if on (with the cache).
    pub fn refusals(&self) -> Option<&RefusalMemo> {
        self.refusals.as_ref()
    }

    /// Starts loading the refusal memo's set for `credential` when it is a bearer token and the
    /// memo is on ([`RefusalMemo::prefetch_set`]): call it some checks before the decision.
    /// A hint only: every decision is the same with or without it.
    #[inline]
    pub fn prefetch(&self, credential: &Result<Credential<'_>, Reject>) {
        if let (Some(refusals), Ok(Credential::Bearer(token))) = (&self.refusals, credential) {
            refusals.prefetch_set(token);
        }
    }

    /// The whole decision for a request to the front door.
    pub fn decide<'s, 'r>(
        &self,
        snapshot: &'s Snapshot,
        request: &Request<'r>,
    ) -> Verdict<Admitted<'s, 'r>> {
        self.decide_on_connection(snapshot, request, None)
    }

    /// The decision for a request on a connection that remembers its last verified JWT.
    pub fn decide_on_connection<'s, 'r>(
        &self,
        snapshot: &'s Snapshot,
        request: &Request<'r>,
        memo: Option<&'s mut ConnectionMemo>,
    ) -> Verdict<Admitted<'s, 'r>> {
        let credential = credential::extract(request.headers);
        self.decide_with_credential(snapshot, request, credential, memo)
    }

    /// [`Gate::decide_on_connection`] with the request's credential already taken out of its
    /// headers ([`credential::extract`] of `request.headers`, which the caller may have needed
    /// earlier): the front door extracts it once, for its prefetch hint and the decision.
    ///
    /// With a connection memo, a request that repeats the connection's last admitted one (the
    /// same credential, method, path and client address, under the same snapshot) is answered
    /// from its memo of that admission ([`crate::core::decision_memo`]): the clock, the rate
    /// limit and the quota are checked as ever, and everything else is known. The profile the
    /// answer names is then the memo's.
    pub fn decide_with_credential<'s, 'r>(
        &self,
        snapshot: &'s Snapshot,
        request: &Request<'r>,
        credential: Result<Credential<'_>, Reject>,
        memo: Option<&'s mut ConnectionMemo>,
    ) -> Verdict<Admitted<'s, 'r>> {
        let credential = match credential {
            Ok(credential) => credential,
            Err(reject) => {
                return Verdict {
                    result: Err(reject),
                    cache: CacheUse::NotUsed,
                }
            }
        };
        let key = Key {
            epoch: snapshot.epoch(),
            credential: &credential,
            method: request.method,
            peer: request.peer,
        };
        // With the cache off every JWT is verified afresh, so no JWT admission is kept.
        let memo_on = self.cache.is_some() || matches!(credential, Credential::AuthToken(_));
        let hit = match &memo {
            Some(m) if memo_on => m
                .decided
                .check(&key, snapshot, request.path, request.now_ms),
            _ => None,
        };
        let mut memo = match (hit, memo) {
            (Some(hit), Some(m)) => return self.admit_again(&*m, hit, &key, request),
            (_, memo) => memo,
        };
        let Verdict { result, cache } = self.authenticate_on_connection(
            snapshot,
            &credential,
            request.peer,
            request.now_ms,
            memo.as_deref_mut(),
        );
        let route = memo.as_deref_mut().map(|m| &mut m.route);
        let result = result
            .and_then(|identity| authorize(snapshot, identity, request, self.live_nodes(), route));
        if let (Ok(admitted), Some(m)) = (&result, memo) {
            if memo_on && m.repeated && m.route.repeated() {
                m.remember_admission(snapshot, &key, request.path, admitted);
            }
        }
        Verdict { result, cache }
    }

    /// The answer to a request that repeats the connection's last admission (`hit`, from
    /// [`DecisionMemo::check`](crate::core::decision_memo::DecisionMemo::check)): the rate limit and the quota, then admitted as before.
    fn admit_again<'s, 'r>(
        &self,
        memo: &'s ConnectionMemo,
        hit: Hit<'s, 'r>,
        key: &Key<'_>,
        request: &Request<'r>,
    ) -> Verdict<Admitted<'s, 'r>> {
        let cache = match key.credential {
            Credential::Bearer(_) => CacheUse::Hit,
            Credential::AuthToken(_) => CacheUse::NotUsed,
        };
        // `check` found an admission, so there is a caller; fail closed all the same.
        let Some((profile, jwt)) = memo.decided.caller() else {
            return Verdict {
                result: Err(Reject::InvalidToken),
                cache,
            };
        };
        let result =
            check_counters(profile, request.now_ms, self.live_nodes()).map(|()| Admitted {
                identity: Identity {
                    profile,
                    auth: if jwt.is_some() {
                        AuthKind::Jwt
                    } else {
                        AuthKind::Token
                    },
                    jwt: jwt.cloned(),
                },
                collection: hit.collection,
                endpoint: hit.endpoint,
                rest_path: hit.rest_path,
            });
        Verdict { result, cache }
    }

    /// Authentication alone: credential → profile → active → method → token valid → IP allowed.
    pub fn authenticate<'s>(
        &self,
        snapshot: &'s Snapshot,
        headers: &HeaderMap,
        peer: IpAddr,
        now_ms: u64,
    ) -> Verdict<Identity<'s>> {
        match credential::extract(headers) {
            Ok(credential) => {
                self.authenticate_on_connection(snapshot, &credential, peer, now_ms, None)
            }
            Err(reject) => Verdict {
                result: Err(reject),
                cache: CacheUse::NotUsed,
            },
        }
    }

    fn authenticate_on_connection<'s>(
        &self,
        snapshot: &'s Snapshot,
        credential: &Credential<'_>,
        peer: IpAddr,
        now_ms: u64,
        memo: Option<&mut ConnectionMemo>,
    ) -> Verdict<Identity<'s>> {
        let mut cache = CacheUse::NotUsed;
        let result = match credential {
            Credential::AuthToken(token) => {
                let digest = match memo {
                    Some(memo) => memo.token_digest(token),
                    None => token_digest(token),
                };
                authenticate_auth_token(snapshot, &digest, now_ms)
            }
            Credential::Bearer(token) => {
                self.authenticate_jwt(snapshot, token, now_ms, &mut cache, memo)
            }
        };
        let result = result.and_then(|identity| {
            let ip_allow = &identity.profile.ip_allow;
            if ip_allow.is_empty() || ip_allow.iter().any(|block| block.contains(peer)) {
                Ok(identity)
            } else {
                Err(Reject::AddressNotAllowed)
            }
        });
        Verdict { result, cache }
    }

    fn authenticate_jwt<'s>(
        &self,
        snapshot: &'s Snapshot,
        token: &[u8],
        now_ms: u64,
        cache_use: &mut CacheUse,
        mut memo: Option<&mut ConnectionMemo>,
    ) -> Result<Identity<'s>, Reject> {
        let now_s = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        let (Some(cache), Some(refusals)) = (&self.cache, &self.refusals) else {
            return verify_jwt(snapshot, token, now_s, now_ms, &mut CacheUse::NotUsed)
                .map(|(identity, _)| identity)
                .map_err(|refusal| refusal.reject);
        };
        if token.len() > jwt::MAX_JWT_LEN {
            return Err(Reject::InvalidToken);
        }
        // The connection's last token, compared byte for byte: no digest, no shared cache.
        if let Some(verified) = memo.as_deref_mut().and_then(|m| m.recall(token)) {
            if let Some(identity) = revalidate(snapshot, verified, now_s, now_ms)? {
                *cache_use = CacheUse::Hit;
                return Ok(identity);
            }
        }
        // Refused for good under this snapshot: no digest, no lookup, no parse.
        if refusals.contains(token, snapshot.epoch()) {
            return Err(Reject::InvalidToken);
        }
        let token_key = token_digest(token);
        if let Some(verified) = cache.get(&token_key) {
            match revalidate(snapshot, &verified, now_s, now_ms) {
                Ok(Some(identity)) => {
                    *cache_use = CacheUse::Hit;
                    if let Some(memo) = memo.as_deref_mut() {
                        memo.remember(token, &verified);
                    }
                    return Ok(identity);
                }
                // The profile changed since: verified afresh below (and cached again).
                Ok(None) => {}
                // Expired for good: a client that keeps retrying the token must not keep its
                // entry warm in the cache. (A disabled profile may come back: its entry stays.)
                Err(reject) => {
                    if reject == Reject::TokenExpired {
                        cache.invalidate(&token_key);
                    }
                    return Err(reject);
                }
            }
        }
        // A miss is counted only once the token names a profile: garbage and unknown tokens
        // never reach the cache's work, so they would only blur its hit ratio.
        let (identity, verified) =
            verify_jwt(snapshot, token, now_s, now_ms, cache_use).map_err(|refusal| {
                if refusal.settled {
                    refusals.insert(token, snapshot.epoch());
                }
                refusal.reject
            })?;
        if let Some(memo) = memo {
            memo.remember(token, &verified);
        }
        cache.insert(&token_key, verified);
        Ok(identity)
    }
}

fn authenticate_auth_token<'s>(
    snapshot: &'s Snapshot,
    digest: &TokenDigest,
    now_ms: u64,
) -> Result<Identity<'s>, Reject> {
    let entry = snapshot
        .profile_by_token(digest)
        .ok_or(Reject::InvalidToken)?;
    let profile = &*entry.profile;
    if !entry.is_live(now_ms) || !profile.active || !matches!(*profile.auth, CompiledAuth::Token) {
        return Err(Reject::InvalidToken);
    }
    Ok(Identity {
        profile,
        auth: AuthKind::Token,
        jwt: None,
    })
}

/// Checks a cached verification against the profile's current state.
/// `Ok(None)`: the profile changed since, so verify the token afresh.
fn revalidate<'s>(
    snapshot: &'s Snapshot,
    verified: &VerifiedJwt,
    now_s: i64,
    now_ms: u64,
) -> Result<Option<Identity<'s>>, Reject> {
    let entry = snapshot
        .profile_by_token(&verified.caller.key_digest)
        .ok_or(Reject::InvalidToken)?;
    let profile = &*entry.profile;
    if profile.generation != verified.generation {
        return Ok(None);
    }
    if !entry.is_live(now_ms)
        || !profile.active
        || !matches!(*profile.auth, CompiledAuth::Jwt { .. })
    {
        return Err(Reject::InvalidToken);
    }
    jwt::check_times(verified.exp(), verified.nbf(), profile.leeway_s(), now_s)?;
    Ok(Some(Identity {
        profile,
        auth: AuthKind::Jwt,
        jwt: Some(verified.clone()),
    }))
}

/// Why full verification refused a token.
struct Refusal {
    reject: Reject,
    /// Decided by the token's bytes and the snapshot alone, not the clock: the same token is
    /// refused again for as long as the snapshot stands (see [`RefusalMemo`]).
    settled: bool,
}

impl Refusal {
    /// A refusal that only a change of snapshot can undo: always `invalid_token`.
    const SETTLED: Refusal = Refusal {
        reject: Reject::InvalidToken,
        settled: true,
    };

    /// A refusal that depends on the clock.
    fn timed(reject: Reject) -> Refusal {
        Refusal {
            reject,
            settled: false,
        }
    }
}

/// Full verification: parse, find the profile by key claim, then (only then) the signature and
/// claims. `cache_use` becomes [`CacheUse::Miss`] once the token names a live profile.
fn verify_jwt<'s>(
    snapshot: &'s Snapshot,
    token: &[u8],
    now_s: i64,
    now_ms: u64,
    cache_use: &mut CacheUse,
) -> Result<(Identity<'s>, VerifiedJwt), Refusal> {
    // Every parse error is `invalid_token` and depends on the bytes alone.
    let parsed = jwt::parse(token).map_err(|reject| {
        debug_assert_eq!(reject, Reject::InvalidToken);
        Refusal::SETTLED
    })?;
    let key_digest = parsed.key_digest.ok_or(Refusal::SETTLED)?;
    let entry = snapshot
        .profile_by_token(&key_digest)
        .ok_or(Refusal::SETTLED)?;
    let profile = &*entry.profile;
    if !entry.is_live(now_ms) {
        // A previous token past its grace deadline: the clock decided.
        return Err(Refusal::timed(Reject::InvalidToken));
    }
    if !profile.active {
        return Err(Refusal::SETTLED);
    }
    *cache_use = CacheUse::Miss;
    let CompiledAuth::Jwt { alg, key, rules } = &*profile.auth else {
        return Err(Refusal::SETTLED);
    };
    if *alg != parsed.alg {
        return Err(Refusal::SETTLED);
    }
    let mut signature_buf = [0u8; MAX_SIGNATURE_LEN];
    let signature = parsed
        .signature(&mut signature_buf)
        .map_err(|_| Refusal::SETTLED)?;
    let signature_ok = match (key, parsed.alg) {
        (VerifyKey::Hmac(key), JwtAlg::HS256) => key.verify(parsed.signing_input, signature),
        (VerifyKey::Rsa(key), JwtAlg::RS256) => key.verify(parsed.signing_input, signature),
        _ => false,
    };
    if !signature_ok {
        return Err(Refusal::SETTLED);
    }
    // `exp`, `nbf` and lifetime rules read the clock.
    jwt::check_claims(&parsed.claims, rules, now_s).map_err(Refusal::timed)?;
    let caller = entry.callers.caller(&key_digest, parsed.claims.name);
    let verified = VerifiedJwt::new(
        caller,
        profile.generation,
        parsed.claims.exp,
        parsed.claims.nbf,
    );
    Ok((
        Identity {
            profile,
            auth: AuthKind::Jwt,
            jwt: Some(verified.clone()),
        },
        verified,
    ))
}

/// Authorization after authentication: route (from the connection's memo when given) →
/// collection granted → rate limit → quota → endpoint active. `live_nodes` divides
/// cluster-scoped rate limits.
fn authorize<'s, 'r>(
    snapshot: &'s Snapshot,
    identity: Identity<'s>,
    request: &Request<'r>,
    live_nodes: u32,
    memo: Option<&mut RouteMemo>,
) -> Result<Admitted<'s, 'r>, Reject> {
    let route = match memo {
        Some(memo) => memo.route(snapshot, request.method, request.path),
        None => snapshot.route(request.method, request.path),
    };
    let (collection, endpoint, rest_path) = route.ok_or(Reject::NotFound)?;
    if !identity.profile.grants(collection.index) {
        return Err(Reject::CollectionNotGranted);
    }
    let endpoint = endpoint.ok_or(Reject::NotFound)?;
    check_counters(identity.profile, request.now_ms, live_nodes)?;
    if !endpoint.active {
        return Err(Reject::NotFound);
    }
    Ok(Admitted {
        identity,
        collection,
        endpoint,
        rest_path,
    })
}

/// The profile's rate limit, then its quota, at `now_ms` (Unix ms); `live_nodes` divides a
/// cluster-scoped rate limit. Errors: `rate_limited`, `quota_exceeded`.
fn check_counters(profile: &CompiledProfile, now_ms: u64, live_nodes: u32) -> Result<(), Reject> {
    if let Some(limiter) = &profile.rate_limiter {
        limiter
            .check(now_ms, live_nodes)
            .map_err(Reject::RateLimited)?;
    }
    if let Some(quota) = &profile.quota {
        quota.check(now_ms).map_err(Reject::QuotaExceeded)?;
    }
    Ok(())
}
