//! Profile bodies: `auth` (token, HS256, RS256 and their claim rules), `policy` and `ip_allow`.
//! Key material is only checked for shape here; keys are parsed once, when the profile compiles
//! ([`crate::core::registry::Snapshot::build`]).

use serde_json::Value;

use super::Obj;
use crate::admin::ApiError;
use crate::core::cidr::Cidr;
use crate::core::jwt::ClaimSet;
use crate::core::keys::{looks_like_private_key, PRIVATE_KEY_GIVEN};
use crate::core::model::{AuthConfig, JwtAlg, JwtConfig, Policy, Quota, RateLimit, RateLimitScope};

/// Longest HS256 secret as pasted.
const MAX_SECRET: usize = 4096;
/// Longest RS256 public key text (a 16384-bit key in a certificate fits).
const MAX_PUBLIC_KEY: usize = 64 * 1024;
/// Longest accepted `leeway_s`: one hour; more makes `exp` meaningless.
const MAX_LEEWAY_S: u64 = 3600;
/// Claims `required_claims` may name (the ones the verifier knows how to check).
const CLAIMS: [&str; 6] = ClaimSet::NAMES;

/// Parses `auth`. `current` is the profile's auth on `PATCH`: a JWT auth with the same `alg` that
/// omits `secret` or `public_key` keeps the current one, so settings can be changed without
/// pasting the key again (the API never shows it).
pub fn auth(value: &Value, current: Option<&AuthConfig>) -> Result<AuthConfig, ApiError> {
    let kind = match value.as_object().and_then(|m| m.get("type")) {
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => {
            return Err(ApiError::invalid(
                "auth.type",
                "must be \"token\" or \"jwt\"",
            ))
        }
        None if value.is_object() => return Err(ApiError::invalid("auth.type", "is required")),
        None => return Err(ApiError::invalid("auth", "must be a JSON object")),
    };
    match kind {
        "token" => {
            Obj::new(value, "auth", &["type"])?;
            Ok(AuthConfig::Token)
        }
        "jwt" => jwt(value, current).map(AuthConfig::Jwt),
        _ => Err(ApiError::invalid(
            "auth.type",
            "must be \"token\" or \"jwt\"",
        )),
    }
}

fn jwt(value: &Value, current: Option<&AuthConfig>) -> Result<JwtConfig, ApiError> {
    let obj = Obj::new(
        value,
        "auth",
        &[
            "type",
            "alg",
            "secret",
            "secret_is_base64",
            "public_key",
            "required_claims",
            "max_lifetime_s",
            "allowed_issuers",
            "leeway_s",
        ],
    )?;
    let alg = match obj.req_str("alg")? {
        "HS256" => JwtAlg::HS256,
        "RS256" => JwtAlg::RS256,
        _ => {
            return Err(ApiError::invalid(
                "auth.alg",
                "must be \"HS256\" or \"RS256\"",
            ))
        }
    };
    let current = match current {
        Some(AuthConfig::Jwt(c)) if c.alg == alg => Some(c),
        _ => None,
    };
    let mut config = JwtConfig {
        alg,
        secret: None,
        secret_is_base64: false,
        public_key: None,
        required_claims: Vec::new(),
        max_lifetime_s: None,
        allowed_issuers: Vec::new(),
        leeway_s: None,
    };
    match alg {
        JwtAlg::HS256 => {
            if obj.raw("public_key").is_some() {
                return Err(ApiError::invalid(
                    "auth.public_key",
                    "is for RS256; HS256 takes a secret",
                ));
            }
            match obj.opt_str("secret")? {
                Some(secret) => {
                    if secret.is_empty() {
                        return Err(ApiError::invalid("auth.secret", "must not be empty"));
                    }
                    if secret.len() > MAX_SECRET {
                        return Err(ApiError::invalid(
                            "auth.secret",
                            &format!("must be at most {MAX_SECRET} bytes"),
                        ));
                    }
                    config.secret = Some(secret.to_owned());
                    config.secret_is_base64 = obj.opt_bool("secret_is_base64")?.unwrap_or(false);
                }
                None => match current {
                    Some(c) if c.secret.is_some() => {
                        config.secret.clone_from(&c.secret);
                        config.secret_is_base64 = obj
                            .opt_bool("secret_is_base64")?
                            .unwrap_or(c.secret_is_base64);
                    }
                    _ => return Err(ApiError::invalid("auth.secret", "is required for HS256")),
                },
            }
        }
        JwtAlg::RS256 => {
            for name in ["secret", "secret_is_base64"] {
                if obj.raw(name).is_some() {
                    return Err(ApiError::invalid(
                        &obj.field(name),
                        "is for HS256; RS256 takes a public_key",
                    ));
                }
            }
            match obj.opt_str("public_key")? {
                Some(key) => {
                    if key.trim().is_empty() {
                        return Err(ApiError::invalid("auth.public_key", "must not be empty"));
                    }
                    if key.len() > MAX_PUBLIC_KEY {
                        return Err(ApiError::invalid(
                            "auth.public_key",
                            &format!("must be at most {MAX_PUBLIC_KEY} bytes"),
                        ));
                    }
                    if looks_like_private_key(key) {
                        return Err(ApiError::invalid("auth.public_key", PRIVATE_KEY_GIVEN));
                    }
                    config.public_key = Some(key.to_owned());
                }
                None => match current {
                    Some(c) if c.public_key.is_some() => {
                        config.public_key.clone_from(&c.public_key)
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            "auth.public_key",
                            "is required for RS256",
                        ))
                    }
                },
            }
        }
    }
    for (i, claim) in obj
        .opt_array("required_claims")?
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("auth.required_claims[{i}]");
        match claim.as_str() {
            Some(c) if CLAIMS.contains(&c) => {
                if !config.required_claims.iter().any(|have| have == c) {
                    config.required_claims.push(c.to_owned());
                }
            }
            _ => {
                return Err(ApiError::invalid(
                    &field,
                    &format!("must be one of {}", CLAIMS.join(", ")),
                ))
            }
        }
    }
    if let Some(max) = obj.opt_u64("max_lifetime_s")? {
        if max == 0 {
            return Err(ApiError::invalid(
                "auth.max_lifetime_s",
                "must be at least 1",
            ));
        }
        config.max_lifetime_s = Some(max);
    }
    for (i, issuer) in obj
        .opt_array("allowed_issuers")?
        .into_iter()
        .flatten()
        .enumerate()
    {
        match issuer.as_str() {
            Some(iss) if !iss.is_empty() && iss.len() <= 1024 => {
                config.allowed_issuers.push(iss.to_owned())
            }
            _ => {
                return Err(ApiError::invalid(
                    &format!("auth.allowed_issuers[{i}]"),
                    "must be a non-empty string of at most 1024 bytes",
                ))
            }
        }
    }
    if let Some(leeway) = obj.opt_u64("leeway_s")? {
        if leeway > MAX_LEEWAY_S {
            return Err(ApiError::invalid(
                "auth.leeway_s",
                &format!("must be at most {MAX_LEEWAY_S} seconds"),
            ));
        }
        config.leeway_s = Some(leeway);
    }
    Ok(config)
}

/// Parses `policy` (`null` or `{}` → no policy).
pub fn policy(value: &Value) -> Result<Option<Policy>, ApiError> {
    if value.is_null() {
        return Ok(None);
    }
    let obj = Obj::new(value, "policy", &["rate_limit", "quota"])?;
    let rate_limit = match obj.present("rate_limit") {
        None => None,
        Some(limit) => {
            let limit_obj = Obj::new(limit, "policy.rate_limit", &["requests", "per_s", "scope"])?;
            let [requests, per_s] =
                counts(&limit_obj, ["requests", "per_s"], [MAX_REQUESTS, MAX_PER_S])?;
            let scope = match limit_obj.opt_str("scope")? {
                None | Some("node") => RateLimitScope::Node,
                Some("cluster") => RateLimitScope::Cluster,
                Some(_) => {
                    return Err(ApiError::invalid(
                        &limit_obj.field("scope"),
                        "must be \"node\" or \"cluster\"",
                    ))
                }
            };
            Some(RateLimit {
                requests,
                per_s,
                scope,
            })
        }
    };
    let quota = match obj.present("quota") {
        None => None,
        Some(quota) => {
            let quota_obj = Obj::new(quota, "policy.quota", &["requests", "per_days"])?;
            let [requests, per_days] = counts(
                &quota_obj,
                ["requests", "per_days"],
                [MAX_REQUESTS, MAX_PER_DAYS],
            )?;
            Some(Quota { requests, per_days })
        }
    };
    if rate_limit.is_none() && quota.is_none() {
        return Ok(None);
    }
    Ok(Some(Policy { rate_limit, quota }))
}

/// Most requests a rate limit or quota may allow (2^40 − 1, about 10^12: the quota counters
/// keep the window in the other bits of one 64-bit word).
pub const MAX_REQUESTS: u64 = (1 << 40) - 1;
/// Longest rate-limit window, seconds: 366 days.
pub const MAX_PER_S: u64 = 366 * 86_400;
/// Longest quota window, days (SPEC §1).
pub const MAX_PER_DAYS: u64 = 366;

/// Reads required whole numbers from 1 up to the matching maximum.
fn counts<const N: usize>(
    obj: &Obj<'_>,
    names: [&str; N],
    maxima: [u64; N],
) -> Result<[u64; N], ApiError> {
    let mut numbers = [0u64; N];
    for ((slot, name), max) in numbers.iter_mut().zip(names).zip(maxima) {
        let field = obj.field(name);
        match obj.opt_u64(name)? {
            None => return Err(ApiError::invalid(&field, "is required")),
            Some(0) => return Err(ApiError::invalid(&field, "must be at least 1")),
            Some(n) if n > max => {
                return Err(ApiError::invalid(&field, &format!("must be at most {max}")))
            }
            Some(n) => *slot = n,
        }
    }
    Ok(numbers)
}

/// Parses `ip_allow` (`null` → empty) into canonical CIDR strings.
pub fn ip_allow(value: &Value) -> Result<Vec<String>, ApiError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => {
            return Err(ApiError::invalid(
                "ip_allow",
                "must be an array of CIDR blocks",
            ))
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("ip_allow[{i}]");
        let Some(text) = item.as_str() else {
            return Err(ApiError::invalid(
                &field,
                "must be a string such as \"10.0.0.0/8\"",
            ));
        };
        let cidr = Cidr::parse(text).map_err(|e| ApiError::invalid(&field, &e.to_string()))?;
        let canonical = cidr.to_string();
        if !out.contains(&canonical) {
            out.push(canonical);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(err: ApiError) -> String {
        err.message().to_owned()
    }

    #[test]
    fn auth_bodies_are_checked_and_keys_can_be_kept() {
        assert_eq!(
            auth(&json!({"type":"token"}), None).unwrap(),
            AuthConfig::Token
        );
        let err = auth(&json!({"type":"token","secret":"x"}), None).unwrap_err();
        assert!(message(err).starts_with("auth.secret: unknown field"));
        let err = auth(&json!({"type":"jwt","alg":"none"}), None).unwrap_err();
        assert!(message(err).starts_with("auth.alg: "));
        let err = auth(&json!({"type":"jwt","alg":"HS256"}), None).unwrap_err();
        assert_eq!(message(err), "auth.secret: is required for HS256");
        let err = auth(&json!({"type":"jwt","alg":"RS256","secret":"s"}), None).unwrap_err();
        assert!(message(err).starts_with("auth.secret: is for HS256"));
        let err = auth(
            &json!({"type":"jwt","alg":"HS256","secret":"s","required_claims":["exp","aud"]}),
            None,
        )
        .unwrap_err();
        assert!(message(err).starts_with("auth.required_claims[1]: "));
        let current = auth(&json!({"type":"jwt","alg":"HS256","secret":"s3cret"}), None).unwrap();
        let AuthConfig::Jwt(kept) = auth(
            &json!({"type":"jwt","alg":"HS256","leeway_s":5}),
            Some(&current),
        )
        .unwrap() else {
            panic!("not jwt")
        };
        assert_eq!(kept.secret.as_deref(), Some("s3cret"));
        assert_eq!(kept.leeway_s, Some(5));
    }
}
