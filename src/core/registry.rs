//! The in-memory registry: an immutable compiled snapshot of the state, swapped atomically on change.
//!
//! [`Snapshot::build`] parses every key and route once; the hot path only reads. Profiles are
//! indexed by the SHA-256 digest of their auth token (and of a previous token in its grace period).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::core::cidr::Cidr;
use crate::core::jwt::{ClaimRules, ClaimSet};
use crate::core::keys::{HmacKey, RsaPublicKey};
use crate::core::model::{AuthConfig, JwtAlg, JwtConfig, Profile, State};
use crate::core::ratelimit::RateLimiter;
use crate::core::route::{split_collection, CompiledCollection, CompiledEndpoint};
use crate::core::rules;
use crate::core::token::{parse_digest_hex, TokenDigest};

/// Default clock skew allowed on `exp`/`nbf`.
pub const DEFAULT_LEEWAY_S: u64 = 60;
/// Most access profiles per client.
pub const MAX_PROFILES_PER_CLIENT: usize = 20;

/// Why a state could not be compiled: names the offending field for a 400 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    /// Path of the bad field relative to its object, e.g. `auth.public_key` or `endpoints[0].path`.
    pub field: String,
    /// One human sentence; never contains a secret or key.
    pub message: String,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for BuildError {}

fn build_error(field: impl Into<String>, message: impl Into<String>) -> BuildError {
    BuildError {
        field: field.into(),
        message: message.into(),
    }
}

/// A token digest as a hash-map key: already uniformly random, so its first bytes are the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestKey(pub TokenDigest);

impl Hash for DigestKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// Passes a [`DigestKey`]'s bytes through as the hash.
#[derive(Default)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// Hasher builder for maps keyed by [`DigestKey`].
pub type BuildDigestHasher = BuildHasherDefault<DigestHasher>;

/// A profile's verification key, parsed once.
pub enum VerifyKey {
    /// HS256 shared secret.
    Hmac(HmacKey),
    /// RS256 public key.
    Rsa(RsaPublicKey),
}

/// How a compiled profile authenticates.
// Profiles live behind an Arc, one per profile: the variant size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum CompiledAuth {
    /// Raw auth token.
    Token,
    /// JWT pinned to one algorithm and key.
    Jwt {
        /// The only accepted `alg`.
        alg: JwtAlg,
        /// The key, parsed once.
        key: VerifyKey,
        /// Claim rules.
        rules: ClaimRules,
    },
}

/// An access profile ready for the hot path.
pub struct CompiledProfile {
    /// Profile id.
    pub id: Box<str>,
    /// Profile name.
    pub name: Box<str>,
    /// Owning client's id.
    pub client_id: Box<str>,
    /// Owning client's name.
    pub client_name: Box<str>,
    /// Changes whenever the profile changes; cached verifications of other generations are void.
    pub generation: u64,
    /// Profile active and client active.
    pub active: bool,
    /// Authentication method and key.
    pub auth: CompiledAuth,
    /// Indexes of the granted collections, sorted.
    pub collections: Box<[u32]>,
    /// Allowed peer blocks; empty allows every peer.
    pub ip_allow: Box<[Cidr]>,
    /// Rate limiter, kept across snapshots while its configuration is unchanged.
    pub rate_limiter: Option<Arc<RateLimiter>>,
}

impl CompiledProfile {
    /// Whether the collection at `index` is granted.
    pub fn grants(&self, index: u32) -> bool {
        self.collections.binary_search(&index).is_ok()
    }

    /// Leeway of a JWT profile (0 for token profiles).
    pub fn leeway_s(&self) -> i64 {
        match &self.auth {
            CompiledAuth::Jwt { rules, .. } => rules.leeway_s,
            CompiledAuth::Token => 0,
        }
    }
}

/// A token digest's entry: the profile, and the deadline of a token in its grace period.
#[derive(Clone)]
pub struct TokenEntry {
    /// The profile the token belongs to.
    pub profile: Arc<CompiledProfile>,
    /// For a previous token kept by `grace_s`: Unix ms after which it stops working.
    pub valid_until_ms: Option<u64>,
}

impl TokenEntry {
    /// Whether the token still works at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.valid_until_ms.is_none_or(|until| now_ms < until)
    }
}

/// A compiled, immutable view of the state for the hot path.
#[derive(Default)]
pub struct Snapshot {
    /// Collections by their URL segment.
    collections: HashMap<Box<str>, CompiledCollection>,
    /// Profiles by token digest (current and in-grace tokens).
    by_token: HashMap<DigestKey, TokenEntry, BuildDigestHasher>,
    /// Profiles by id.
    profiles: HashMap<Box<str>, Arc<CompiledProfile>>,
}

impl Snapshot {
    /// Compiles `state` (parsing every key once); `previous` lets per-profile rate limiters survive.
    pub fn build(state: &State, previous: Option<&Snapshot>) -> Result<Snapshot, BuildError> {
        let mut collections = HashMap::with_capacity(state.collections.len());
        let mut index_of = HashMap::with_capacity(state.collections.len());
        for (i, collection) in state.collections.iter().enumerate() {
            let index =
                u32::try_from(i).map_err(|_| build_error("collections", "too many collections"))?;
            validate_collection_path(&collection.path)?;
            let compiled = CompiledCollection::build(index, &collection.id, &collection.endpoints)
                .map_err(|(i, e)| build_error(format!("endpoints[{i}].{}", e.field), e.message))?;
            if collections
                .insert(Box::<str>::from(collection.path.as_str()), compiled)
                .is_some()
            {
                return Err(build_error(
                    "path",
                    format!("collection path {:?} is used twice", collection.path),
                ));
            }
            index_of.insert(collection.id.as_str(), index);
        }

        let clients: HashMap<&str, &crate::core::model::Client> =
            state.clients.iter().map(|c| (c.id.as_str(), c)).collect();
        let mut by_token =
            HashMap::with_capacity_and_hasher(state.profiles.len(), BuildDigestHasher::default());
        let mut profiles = HashMap::with_capacity(state.profiles.len());
        let mut per_client: HashMap<&str, usize> = HashMap::new();
        for profile in &state.profiles {
            let client = clients.get(profile.client_id.as_str()).ok_or_else(|| {
                build_error(
                    "client_id",
                    format!("profile {} names no existing client", profile.id),
                )
            })?;
            let count = per_client.entry(client.id.as_str()).or_default();
            *count += 1;
            if *count > MAX_PROFILES_PER_CLIENT {
                return Err(build_error(
                    "client_id",
                    format!("a client has at most {MAX_PROFILES_PER_CLIENT} profiles"),
                ));
            }
            let previous_limiter = previous
                .and_then(|p| p.profiles.get(profile.id.as_str()))
                .and_then(|p| p.rate_limiter.clone());
            let compiled = Arc::new(compile_profile(
                profile,
                client,
                &index_of,
                previous_limiter,
            )?);
            let current = parse_digest_hex(&profile.token.sha256).ok_or_else(|| {
                build_error(
                    "token",
                    format!("profile {} has a malformed token digest", profile.id),
                )
            })?;
            if by_token
                .insert(
                    DigestKey(current),
                    TokenEntry {
                        profile: compiled.clone(),
                        valid_until_ms: None,
                    },
                )
                .is_some()
            {
                return Err(build_error("token", "two profiles share one auth token"));
            }
            if let Some(grace) = &profile.previous_token {
                if let Some(digest) = parse_digest_hex(&grace.sha256) {
                    by_token.entry(DigestKey(digest)).or_insert(TokenEntry {
                        profile: compiled.clone(),
                        valid_until_ms: Some(grace.valid_until_ms),
                    });
                }
            }
            profiles.insert(Box::<str>::from(profile.id.as_str()), compiled);
        }
        Ok(Snapshot {
            collections,
            by_token,
            profiles,
        })
    }

    /// The profile an auth token digest names.
    #[inline]
    pub fn profile_by_token(&self, digest: &TokenDigest) -> Option<&TokenEntry> {
        self.by_token.get(&DigestKey(*digest))
    }

    /// The collection a request path starts with, and the rest of the path.
    pub fn collection_for<'p>(&self, path: &'p str) -> Option<(&CompiledCollection, &'p str)> {
        let (segment, rest) = split_collection(path)?;
        self.collections.get(segment).map(|c| (c, rest))
    }

    /// Finds the endpoint for a request: the collection, then the endpoint inside it.
    pub fn route<'p>(
        &self,
        method: &http::Method,
        path: &'p str,
    ) -> Option<(&CompiledCollection, Option<&CompiledEndpoint>, &'p str)> {
        let (collection, rest) = self.collection_for(path)?;
        Some((collection, collection.find(method, rest), rest))
    }
}

fn validate_collection_path(path: &str) -> Result<(), BuildError> {
    rules::collection_path(path).map_err(|e| build_error("path", format!("{path:?} {e}")))
}

fn compile_profile(
    profile: &Profile,
    client: &crate::core::model::Client,
    index_of: &HashMap<&str, u32>,
    previous_limiter: Option<Arc<RateLimiter>>,
) -> Result<CompiledProfile, BuildError> {
    let mut collections = Vec::with_capacity(profile.collections.len());
    for (i, id) in profile.collections.iter().enumerate() {
        let index = index_of.get(id.as_str()).ok_or_else(|| {
            build_error(
                format!("collections[{i}]"),
                format!("no collection has id {id:?}"),
            )
        })?;
        collections.push(*index);
    }
    collections.sort_unstable();
    collections.dedup();

    let ip_allow = profile
        .ip_allow
        .iter()
        .enumerate()
        .map(|(i, text)| {
            Cidr::parse(text).map_err(|e| build_error(format!("ip_allow[{i}]"), e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let rate_limiter = match profile.policy.as_ref().and_then(|p| p.rate_limit) {
        None => None,
        Some(limit) => {
            if limit.requests == 0 || limit.per_s == 0 {
                return Err(build_error(
                    "policy.rate_limit",
                    "requests and per_s must be at least 1",
                ));
            }
            match previous_limiter {
                Some(kept) if kept.has_config(limit.requests, limit.per_s) => Some(kept),
                _ => Some(Arc::new(RateLimiter::new(limit.requests, limit.per_s))),
            }
        }
    };

    Ok(CompiledProfile {
        id: profile.id.as_str().into(),
        name: profile.name.as_str().into(),
        client_id: client.id.as_str().into(),
        client_name: client.name.as_str().into(),
        generation: profile.generation,
        active: profile.active && client.active,
        auth: compile_auth(&profile.auth)?,
        collections: collections.into(),
        ip_allow: ip_allow.into(),
        rate_limiter,
    })
}

/// Compiles an `auth` object: parses its key once. Field names are relative to the profile.
pub fn compile_auth(auth: &AuthConfig) -> Result<CompiledAuth, BuildError> {
    let jwt = match auth {
        AuthConfig::Token => return Ok(CompiledAuth::Token),
        AuthConfig::Jwt(jwt) => jwt,
    };
    let key = match jwt.alg {
        JwtAlg::HS256 => {
            if jwt.public_key.is_some() {
                return Err(build_error(
                    "auth.public_key",
                    "an HS256 profile takes a secret, not a public key",
                ));
            }
            let secret = jwt
                .secret
                .as_deref()
                .ok_or_else(|| build_error("auth.secret", "an HS256 profile needs a secret"))?;
            VerifyKey::Hmac(
                HmacKey::from_secret(secret, jwt.secret_is_base64)
                    .map_err(|e| build_error("auth.secret", e.to_string()))?,
            )
        }
        JwtAlg::RS256 => {
            if jwt.secret.is_some() {
                return Err(build_error(
                    "auth.secret",
                    "an RS256 profile takes a public key, not a secret",
                ));
            }
            let text = jwt.public_key.as_deref().ok_or_else(|| {
                build_error("auth.public_key", "an RS256 profile needs a public key")
            })?;
            VerifyKey::Rsa(
                RsaPublicKey::parse(text)
                    .map_err(|e| build_error("auth.public_key", e.to_string()))?,
            )
        }
    };
    Ok(CompiledAuth::Jwt {
        alg: jwt.alg,
        key,
        rules: compile_rules(jwt)?,
    })
}

fn compile_rules(jwt: &JwtConfig) -> Result<ClaimRules, BuildError> {
    let mut required = ClaimSet::default();
    for (i, name) in jwt.required_claims.iter().enumerate() {
        if ClaimSet::bit(name).is_none() {
            return Err(build_error(
                format!("auth.required_claims[{i}]"),
                format!(
                    "{name:?} cannot be required; choose from {}",
                    ClaimSet::NAMES.join(", ")
                ),
            ));
        }
        required.insert(name);
    }
    let to_i64 =
        |field: &str, v: u64| i64::try_from(v).map_err(|_| build_error(field, "is too large"));
    Ok(ClaimRules {
        required,
        max_lifetime_s: jwt
            .max_lifetime_s
            .map(|v| to_i64("auth.max_lifetime_s", v))
            .transpose()?,
        allowed_issuers: jwt
            .allowed_issuers
            .iter()
            .map(|s| Box::<str>::from(s.as_str()))
            .collect(),
        leeway_s: to_i64(
            "auth.leeway_s",
            jwt.leeway_s.unwrap_or(DEFAULT_LEEWAY_S).min(86_400),
        )?,
    })
}

/// The live registry: readers load the current snapshot without locking.
pub struct Registry {
    current: ArcSwap<Snapshot>,
}

impl Registry {
    /// A registry serving `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        Registry {
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    /// The current snapshot, kept alive for as long as the caller holds it.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// A cheap read guard of the current snapshot for one request.
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// Replaces the snapshot; requests that start afterwards see the new one.
    pub fn install(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }
}
