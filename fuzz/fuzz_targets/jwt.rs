//! Fuzzes `core::jwt::parse`, `Jwt::signature`, `check_claims` and `check_times`. Asserts: no
//! panic; an accepted token splits as `header.payload.signature` with `signing_input` and
//! `signature_b64` borrowed from it; what `parse` read (alg, key digest, exp/nbf/iat/iss/name,
//! present claims) equals an independent serde_json reading of the decoded header and payload, and
//! `parse` accepts only objects without duplicate members, `crit` or a non-HS256/RS256 `alg`; in
//! JSON mode (flag bit 0) a well-formed token the model accepts is accepted too; a decoded
//! signature re-encodes to the same segment (canonical base64url); an HS256 re-signature verifies;
//! `check_claims` Ok implies required claims present, issuer allowed, lifetime bound and
//! `check_times` Ok.
//!
//! Input: byte 0 = flags; the rest is the compact token (raw mode) or, in JSON mode,
//! `header JSON 0xFF payload JSON 0xFF signature bytes`, base64url-encoded here.
#![no_main]

#[path = "common.rs"]
mod common;

use base64::Engine;
use common::Members;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tokengate::core::jwt::{self, ClaimRules, ClaimSet, Claims, BASE64URL, MAX_JWT_LEN, MAX_SIGNATURE_LEN};
use tokengate::core::keys::HmacKey;
use tokengate::core::model::JwtAlg;
use tokengate::core::token::{token_digest, TokenDigest};

/// FINDING-1 (README.md): `parse` skips members it does not read with serde's `IgnoredAny`, which
/// does not check UTF-8, so a payload such as `{"x":"\x9f"}` (not JSON: RFC 8259 §8.1) is
/// accepted. Set to `false` to make `regressions/jwt/invalid-utf8-in-ignored-claim` fail again.
const LENIENT_UTF8: bool = false;

/// What an independent reading of header and payload says `parse` must return.
struct Expected {
    alg: JwtAlg,
    key_digest: Option<TokenDigest>,
    claims: Claims,
}

fn numeric_date(v: &Value) -> Option<i64> {
    let n = v.as_number()?;
    Some(if let Some(u) = n.as_u64() {
        i64::try_from(u).unwrap_or(i64::MAX)
    } else if let Some(i) = n.as_i64() {
        i
    } else {
        n.as_f64()?.floor() as i64
    })
}

fn nonempty_str(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `None`: the model refuses the token. Members `parse` does not read are skipped.
fn model(header: &[u8], payload: &[u8]) -> Option<Expected> {
    let h = Members::read(header, &["alg", "kid", "crit"])?;
    let p = Members::read(
        payload,
        &["exp", "nbf", "iat", "iss", "name", "sub", "workato_sub", "https://www.workato.com/sub"],
    )?;
    for m in [&h, &p] {
        if m.has_duplicates() || m.0.len() > 64 {
            return None;
        }
    }
    if h.get("crit").is_some() {
        return None;
    }
    let alg = match h.get("alg")?.as_str()? {
        "HS256" => JwtAlg::HS256,
        "RS256" => JwtAlg::RS256,
        _ => return None,
    };
    let mut claims = Claims::default();
    for (k, _) in &p.0 {
        claims.present.insert(k);
    }
    for (name, slot) in [("exp", &mut claims.exp), ("nbf", &mut claims.nbf), ("iat", &mut claims.iat)] {
        if let Some(v) = p.get(name) {
            *slot = Some(numeric_date(v)?);
        }
    }
    claims.iss = p.get("iss").and_then(Value::as_str).map(Into::into);
    claims.name = p.get("name").and_then(Value::as_str).map(Into::into);
    let key = nonempty_str(p.get("https://www.workato.com/sub"))
        .or_else(|| nonempty_str(p.get("workato_sub")))
        .or_else(|| nonempty_str(p.get("sub")))
        .or_else(|| nonempty_str(h.get("kid")));
    Some(Expected {
        alg,
        key_digest: key.map(|k| token_digest(k.as_bytes())),
        claims,
    })
}

fn check(token: &[u8], json_mode: bool, flags: u8) {
    let parsed = jwt::parse(token);
    let Ok(jwt) = parsed else { return };

    // Shape: exactly three non-empty segments, borrowed from the token.
    assert!(token.len() <= MAX_JWT_LEN);
    assert_eq!(token.iter().filter(|&&b| b == b'.').count(), 2);
    let last_dot = token.iter().rposition(|&b| b == b'.').unwrap();
    assert_eq!(jwt.signing_input, &token[..last_dot]);
    assert_eq!(jwt.signature_b64, &token[last_dot + 1..]);
    assert!(!jwt.signature_b64.is_empty());

    // What parse read equals the independent reading.
    let (h64, p64) = {
        let dot = jwt.signing_input.iter().position(|&b| b == b'.').unwrap();
        (&jwt.signing_input[..dot], &jwt.signing_input[dot + 1..])
    };
    let header = BASE64URL.decode(h64).expect("accepted header is not base64url");
    let payload = BASE64URL.decode(p64).expect("accepted payload is not base64url");
    let expected = model(&header, &payload).unwrap_or_else(|| {
        panic!(
            "parse accepted a token the model refuses: header {:?} payload {:?}",
            String::from_utf8_lossy(&header),
            String::from_utf8_lossy(&payload)
        )
    });
    if !LENIENT_UTF8 {
        assert!(
            std::str::from_utf8(&header).is_ok() && std::str::from_utf8(&payload).is_ok(),
            "FINDING-1: parse accepted a header or payload that is not UTF-8"
        );
    }
    assert_eq!(jwt.alg, expected.alg);
    assert_eq!(jwt.key_digest, expected.key_digest);
    assert_eq!(jwt.claims, expected.claims);

    // The decoded signature is canonical base64url.
    let mut buf = [0u8; MAX_SIGNATURE_LEN];
    if let Ok(sig) = jwt.signature(&mut buf) {
        assert!(sig.len() <= MAX_SIGNATURE_LEN);
        assert_eq!(BASE64URL.encode(sig).as_bytes(), jwt.signature_b64);
    }

    claim_rules(&jwt.claims, flags);

    if json_mode {
        // An HS256 signature over the signing input verifies after a round trip through parse.
        let key = HmacKey::from_bytes(&[7u8; 32]).unwrap();
        let mac = key.sign(jwt.signing_input);
        let mut resigned = jwt.signing_input.to_vec();
        resigned.push(b'.');
        resigned.extend_from_slice(BASE64URL.encode(mac).as_bytes());
        if resigned.len() <= MAX_JWT_LEN {
            let again = jwt::parse(&resigned).expect("re-signed token refused");
            let mut buf = [0u8; MAX_SIGNATURE_LEN];
            let sig = again.signature(&mut buf).expect("HMAC signature refused");
            assert!(key.verify(again.signing_input, sig));
            assert!(!key.verify(again.signing_input, &sig[..31]));
        }
    }
}

fn claim_rules(claims: &Claims, flags: u8) {
    let mut all = ClaimSet::default();
    for n in ClaimSet::NAMES {
        if flags & 2 != 0 || n == "exp" {
            all.insert(n);
        }
    }
    let issuers: Box<[Box<str>]> = match claims.iss.as_deref() {
        Some(iss) if flags & 4 != 0 => vec!["joe".into(), iss.into()].into(),
        _ => vec!["joe".into()].into(),
    };
    let leeway = [0i64, 60, 86_400][usize::from(flags >> 3) % 3];
    let rule_sets = [
        ClaimRules { leeway_s: leeway, ..ClaimRules::default() },
        ClaimRules {
            required: all,
            max_lifetime_s: Some(3600),
            allowed_issuers: issuers.clone(),
            leeway_s: leeway,
        },
        ClaimRules {
            max_lifetime_s: Some(i64::MAX),
            allowed_issuers: issuers,
            leeway_s: leeway,
            ..ClaimRules::default()
        },
    ];
    let mut nows = vec![0i64, 1_300_819_379, 1_300_819_380, i64::MAX, i64::MIN];
    for t in [claims.exp, claims.nbf, claims.iat].into_iter().flatten() {
        nows.extend([t.saturating_sub(leeway), t.saturating_sub(leeway).saturating_sub(1), t]);
    }
    for rules in &rule_sets {
        for &now in &nows {
            let verdict = jwt::check_claims(claims, rules, now);
            let times = jwt::check_times(claims.exp, claims.nbf, rules.leeway_s, now);
            if verdict.is_ok() {
                assert!(claims.present.contains_all(rules.required));
                if !rules.allowed_issuers.is_empty() {
                    let iss = claims.iss.as_deref().expect("no iss but issuers checked");
                    assert!(rules.allowed_issuers.iter().any(|a| &**a == iss));
                }
                if let Some(max) = rules.max_lifetime_s {
                    let exp = claims.exp.expect("max lifetime without exp");
                    assert!(exp.saturating_sub(now) <= max);
                    if let Some(iat) = claims.iat {
                        assert!(exp.saturating_sub(iat) <= max);
                    }
                }
                assert_eq!(times, Ok(()));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else { return };
    if flags & 1 == 0 {
        check(body, false, flags);
        return;
    }
    // JSON mode: header 0xFF payload 0xFF signature.
    let parts = common::split(body, 0xFF);
    let header = parts[0];
    let payload = parts.get(1).copied().unwrap_or(b"{}");
    let sig = parts.get(2).copied().unwrap_or(b"sig");
    let mut token = String::new();
    token.push_str(&BASE64URL.encode(header));
    token.push('.');
    token.push_str(&BASE64URL.encode(payload));
    token.push('.');
    token.push_str(&BASE64URL.encode(sig));

    let accepted = jwt::parse(token.as_bytes()).is_ok();
    // Completeness: inside the documented size limits, a token the model accepts is accepted.
    let within_limits = !header.is_empty()
        && !payload.is_empty()
        && !sig.is_empty()
        && sig.len() <= MAX_SIGNATURE_LEN
        && token.len() <= MAX_JWT_LEN
        && header.len() <= 1000
        && payload.len() <= 6000
        // JSON is UTF-8 (RFC 8259 §8.1); since FINDING-1 was fixed, parse refuses anything else.
        && (LENIENT_UTF8 || (std::str::from_utf8(header).is_ok() && std::str::from_utf8(payload).is_ok()));
    if within_limits && !accepted {
        if model(header, payload).is_some() {
            panic!(
                "parse refused a token the model accepts: header {:?} payload {:?}",
                String::from_utf8_lossy(header),
                String::from_utf8_lossy(payload)
            );
        }
    }
    check(token.as_bytes(), true, flags);
});
