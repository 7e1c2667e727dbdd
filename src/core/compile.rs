//! Compiling stored objects for the hot path: a profile's key parsed once, its claim rules, its
//! granted collections as indexes, its CIDR blocks and its rate limiter. Pure functions; the
//! registry ([`super::registry`]) decides what to recompile.

use std::collections::HashMap;
use std::sync::Arc;

use crate::core::cidr::Cidr;
use crate::core::jwt::{ClaimRules, ClaimSet};
use crate::core::keys::{HmacKey, RsaPublicKey};
use crate::core::model::{AuthConfig, Client, JwtAlg, JwtConfig, Profile};
use crate::core::quota::QuotaCounter;
use crate::core::ratelimit::RateLimiter;
use crate::core::registry::{
    build_error, BuildError, CompiledAuth, CompiledProfile, VerifyKey, DEFAULT_LEEWAY_S,
};
use crate::core::rules;
use crate::core::token::{parse_digest_hex, TokenDigest};

/// The digests under which a profile is found: its current token, then a previous token in its
/// grace period.
fn token_digests(profile: &Profile) -> Result<Box<[TokenDigest]>, BuildError> {
    let current = parse_digest_hex(&profile.token.sha256).ok_or_else(|| {
        build_error(
            "token",
            format!("profile {} has a malformed token digest", profile.id),
        )
    })?;
    let mut digests = vec![current];
    if let Some(digest) = profile
        .previous_token
        .as_ref()
        .and_then(|grace| parse_digest_hex(&grace.sha256))
    {
        digests.push(digest);
    }
    Ok(digests.into())
}

/// Checks a collection's path with the admin API's rule.
pub(crate) fn validate_collection_path(path: &str) -> Result<(), BuildError> {
    rules::collection_path(path).map_err(|e| build_error("path", format!("{path:?} {e}")))
}

/// Compiles one profile for the hot path. `slots` maps collection ids to their stable indexes;
/// `auth` is the profile's compiled key (reused from the previous snapshot when unchanged);
/// `previous` (the rate limiter and quota counter of the profile's last compiled form) is kept
/// when its configuration is unchanged, so a change to a profile neither refills its bucket nor
/// forgets its quota count. Errors name the field relative to the profile.
pub(crate) fn compile_profile(
    profile: &Profile,
    client: &Client,
    slots: &HashMap<Box<str>, u32>,
    auth: Arc<CompiledAuth>,
    previous: (Option<Arc<RateLimiter>>, Option<Arc<QuotaCounter>>),
) -> Result<CompiledProfile, BuildError> {
    let (previous_limiter, previous_quota) = previous;
    let mut collections = Vec::with_capacity(profile.collections.len());
    for (i, id) in profile.collections.iter().enumerate() {
        let index = slots.get(id.as_str()).ok_or_else(|| {
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
                Some(kept) if kept.has_config(limit.requests, limit.per_s, limit.scope) => {
                    Some(kept)
                }
                _ => Some(Arc::new(RateLimiter::new(
                    limit.requests,
                    limit.per_s,
                    limit.scope,
                ))),
            }
        }
    };
    let quota = match profile.policy.as_ref().and_then(|p| p.quota) {
        None => None,
        Some(quota) => {
            if quota.requests == 0 || !(1..=366).contains(&quota.per_days) {
                return Err(build_error(
                    "policy.quota",
                    "requests must be at least 1 and per_days 1 to 366",
                ));
            }
            match previous_quota {
                Some(kept) if kept.has_window(quota.per_days) => {
                    kept.set_limit(quota.requests);
                    Some(kept)
                }
                _ => Some(Arc::new(QuotaCounter::new(quota.requests, quota.per_days))),
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
        auth,
        token_digests: token_digests(profile)?,
        collections: collections.into(),
        ip_allow: ip_allow.into(),
        rate_limiter,
        quota,
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
