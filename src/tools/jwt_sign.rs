//! Signing JWTs the way a client does (for `tokengate jwt sign`, the bench harness and tests).

use base64::Engine;
use serde_json::{Map, Value};

use crate::core::jwt::BASE64URL;
use crate::core::keys::{HmacKey, KeyError};
use crate::tools::signing::RsaSigningKey;

/// A key to sign with.
pub enum SigningKey {
    /// HS256 shared secret.
    Hs256(HmacKey),
    /// RS256 private key.
    Rs256(RsaSigningKey),
}

impl SigningKey {
    /// The JWS `alg` this key makes.
    pub fn alg(&self) -> &'static str {
        match self {
            SigningKey::Hs256(_) => "HS256",
            SigningKey::Rs256(_) => "RS256",
        }
    }

    /// Signs `claims` into a compact JWT with header `{"alg":…,"typ":"JWT"}`.
    pub fn sign(&self, claims: &Map<String, Value>) -> Result<String, KeyError> {
        let header = format!(r#"{{"alg":"{}","typ":"JWT"}}"#, self.alg());
        let payload = Value::Object(claims.clone()).to_string();
        let mut token = String::with_capacity(header.len() * 2 + payload.len() * 2 + 400);
        BASE64URL.encode_string(header, &mut token);
        token.push('.');
        BASE64URL.encode_string(payload, &mut token);
        let signature = match self {
            SigningKey::Hs256(key) => key.sign(token.as_bytes()).to_vec(),
            SigningKey::Rs256(key) => key.sign(token.as_bytes())?,
        };
        token.push('.');
        BASE64URL.encode_string(signature, &mut token);
        Ok(token)
    }
}

/// Claims for a client's JWT: `sub` = auth token, `name`, `iat`, and `exp` when given.
pub fn client_claims(
    sub: &str,
    name: Option<&str>,
    now_s: i64,
    lifetime_s: Option<i64>,
) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::from(sub));
    if let Some(name) = name {
        claims.insert("name".into(), Value::from(name));
    }
    claims.insert("iat".into(), Value::from(now_s));
    if let Some(lifetime) = lifetime_s {
        claims.insert("exp".into(), Value::from(now_s.saturating_add(lifetime)));
    }
    claims
}

/// Parses a lifetime like `90`, `90s`, `15m`, `1h`, `7d` into seconds.
pub fn parse_lifetime(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let value: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 15m, 1h or 7d"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?} has an unknown unit; use s, m, h or d")),
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_lifetime("90"), Ok(90));
        assert_eq!(parse_lifetime("15m"), Ok(900));
        assert_eq!(parse_lifetime("1h"), Ok(3600));
        assert_eq!(parse_lifetime("7d"), Ok(604_800));
        assert!(parse_lifetime("1y").is_err());
        assert!(parse_lifetime("h").is_err());
    }

    #[test]
    fn claims_carry_sub_name_and_times() {
        let claims = client_claims("tok", Some("Ann"), 1000, Some(60));
        assert_eq!(claims["sub"], "tok");
        assert_eq!(claims["name"], "Ann");
        assert_eq!(claims["exp"], 1060);
    }
}
