//! Compact JWS parsing and claim checks (RFC 7515/7519, RFC 8725): no I/O, no signature work.
//!
//! [`parse`] checks the shape, decodes header and payload into stack buffers, rejects
//! duplicate JSON keys, `crit` and every `alg` but `HS256`/`RS256`, and digests the key
//! claim so the profile can be found before any signature is checked.

mod json;

use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

use json::{parse_header, parse_payload};

use crate::core::model::JwtAlg;
use crate::core::reject::Reject;
use crate::core::token::TokenDigest;

/// Longest accepted compact JWT, in bytes: 15 KiB, so that a token with a 10 240-byte payload
/// (the integration platform's own limit) fits in one 16 KiB header (SPEC §3).
pub const MAX_JWT_LEN: usize = 15 * 1024;
/// Longest accepted decoded header, in bytes.
const MAX_HEADER_LEN: usize = 1024;
/// Longest accepted decoded payload, in bytes (what 15 KiB of base64url can hold, rounded
/// down; at least the platform's 10 240).
const MAX_PAYLOAD_LEN: usize = 11 * 1024;
/// Payloads up to this size are decoded into a small stack buffer.
const SMALL_PAYLOAD_LEN: usize = 512;
/// Longest accepted decoded signature (an 8192-bit RSA signature).
pub const MAX_SIGNATURE_LEN: usize = 1024;

/// Strict base64url: no padding, canonical trailing bits.
pub const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// A parsed, not yet verified, compact JWT borrowing from the request.
#[derive(Debug)]
pub struct Jwt<'a> {
    /// `header.payload`: the bytes the signature covers.
    pub signing_input: &'a [u8],
    /// The base64url signature segment, decoded only when a profile was found.
    pub signature_b64: &'a [u8],
    /// The header's `alg`.
    pub alg: JwtAlg,
    /// SHA-256 of the key claim (the auth token the JWT names); `None` when the JWT names none.
    pub key_digest: Option<TokenDigest>,
    /// The claims tokengate checks.
    pub claims: Claims,
}

/// The registered claims tokengate reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims {
    /// `exp`, seconds since the epoch.
    pub exp: Option<i64>,
    /// `nbf`, seconds since the epoch.
    pub nbf: Option<i64>,
    /// `iat`, seconds since the epoch.
    pub iat: Option<i64>,
    /// `iss`, when a string.
    pub iss: Option<Box<str>>,
    /// `name`: the caller's display name, when a string.
    pub name: Option<Box<str>>,
    /// Which claims were present at all, by [`ClaimSet`] bit.
    pub present: ClaimSet,
}

/// A small set of claim names, for `required_claims`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClaimSet(u8);

impl ClaimSet {
    /// The claim names a profile may require.
    pub const NAMES: [&'static str; 6] = ["exp", "nbf", "iat", "iss", "name", "jti"];

    /// The bit of a requirable claim name; `None` for others.
    pub fn bit(name: &str) -> Option<u8> {
        Self::NAMES.iter().position(|n| *n == name).map(|i| 1 << i)
    }

    /// Adds a claim by name (unknown names are ignored).
    pub fn insert(&mut self, name: &str) {
        if let Some(bit) = Self::bit(name) {
            self.0 |= bit;
        }
    }

    /// Whether every claim of `required` is in `self`.
    pub fn contains_all(self, required: ClaimSet) -> bool {
        self.0 & required.0 == required.0
    }
}

/// The claim rules of one JWT profile.
#[derive(Debug, Clone, Default)]
pub struct ClaimRules {
    /// Claims that must be present.
    pub required: ClaimSet,
    /// Longest lifetime accepted, seconds.
    pub max_lifetime_s: Option<i64>,
    /// When non-empty, `iss` must be one of these.
    pub allowed_issuers: Box<[Box<str>]>,
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    pub leeway_s: i64,
}

/// Parses a compact JWS: shape, header, payload and key claim. No signature work.
pub fn parse(token: &[u8]) -> Result<Jwt<'_>, Reject> {
    if token.len() > MAX_JWT_LEN || !token.iter().fold(true, |ok, &b| ok & is_jws_byte(b)) {
        return Err(Reject::InvalidToken);
    }
    let mut parts = token.splitn(3, |&b| b == b'.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(Reject::InvalidToken);
    };
    if header_b64.is_empty()
        || payload_b64.is_empty()
        || signature_b64.is_empty()
        || signature_b64.contains(&b'.')
    {
        return Err(Reject::InvalidToken);
    }
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];

    let mut header_buf = [0u8; MAX_HEADER_LEN];
    let header_json = decode_into(header_b64, &mut header_buf)?;
    let header = parse_header(header_json)?;

    // Most payloads are small: decode them into a small buffer rather than zeroing 6 KiB.
    let payload = if base64::decoded_len_estimate(payload_b64.len()) <= SMALL_PAYLOAD_LEN {
        let mut payload_buf = [0u8; SMALL_PAYLOAD_LEN];
        parse_payload(decode_into(payload_b64, &mut payload_buf)?)?
    } else {
        let mut payload_buf = [0u8; MAX_PAYLOAD_LEN];
        parse_payload(decode_into(payload_b64, &mut payload_buf)?)?
    };

    let key_digest = payload.key_digest.or(header.kid_digest);
    Ok(Jwt {
        signing_input,
        signature_b64,
        alg: header.alg,
        key_digest,
        claims: payload.claims,
    })
}

impl Jwt<'_> {
    /// Decodes the signature into `buf`.
    pub fn signature<'b>(&self, buf: &'b mut [u8; MAX_SIGNATURE_LEN]) -> Result<&'b [u8], Reject> {
        decode_into(self.signature_b64, buf).map(|s| &*s)
    }
}

/// Checks `exp` and `nbf` against `now_s` with `leeway_s`; used on every request, cached or not.
pub fn check_times(
    exp: Option<i64>,
    nbf: Option<i64>,
    leeway_s: i64,
    now_s: i64,
) -> Result<(), Reject> {
    if let Some(exp) = exp {
        if now_s >= exp.saturating_add(leeway_s) {
            return Err(Reject::TokenExpired);
        }
    }
    if let Some(nbf) = nbf {
        if now_s.saturating_add(leeway_s) < nbf {
            return Err(Reject::TokenNotYetValid);
        }
    }
    Ok(())
}

/// Checks every claim rule of a profile after the signature was verified.
pub fn check_claims(claims: &Claims, rules: &ClaimRules, now_s: i64) -> Result<(), Reject> {
    if !claims.present.contains_all(rules.required) {
        return Err(Reject::InvalidToken);
    }
    if !rules.allowed_issuers.is_empty() {
        let iss = claims.iss.as_deref().ok_or(Reject::InvalidToken)?;
        if !rules
            .allowed_issuers
            .iter()
            .any(|allowed| **allowed == *iss)
        {
            return Err(Reject::InvalidToken);
        }
    }
    if let Some(max) = rules.max_lifetime_s {
        let exp = claims.exp.ok_or(Reject::InvalidToken)?;
        let too_long_from_iat = claims.iat.is_some_and(|iat| exp.saturating_sub(iat) > max);
        if too_long_from_iat || exp.saturating_sub(now_s) > max {
            return Err(Reject::InvalidToken);
        }
    }
    check_times(claims.exp, claims.nbf, rules.leeway_s, now_s)
}

/// Whether `b` may appear in a compact JWS: base64url or `.`. Arithmetic, not a table, and
/// folded over the token without an early exit, so the check runs 32 bytes at a time (AVX2): a
/// table lookup per byte was a fifth of the parse of a 600-byte RS256 token.
#[inline]
fn is_jws_byte(b: u8) -> bool {
    // `b | 0x20` folds A-Z onto a-z and maps no other byte into a-z.
    (b.wrapping_sub(b'0') < 10)
        | ((b | 0x20).wrapping_sub(b'a') < 26)
        | (b == b'-')
        | (b == b'_')
        | (b == b'.')
}

fn decode_into<'b>(segment: &[u8], buf: &'b mut [u8]) -> Result<&'b mut [u8], Reject> {
    if base64::decoded_len_estimate(segment.len()) > buf.len() {
        return Err(Reject::InvalidToken);
    }
    let len = BASE64URL
        .decode_slice(segment, buf)
        .map_err(|_| Reject::InvalidToken)?;
    Ok(&mut buf[..len])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::token::token_digest;

    /// The arithmetic check against its definition, on every byte.
    #[test]
    fn jws_bytes_are_base64url_and_dot_only() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.';
            assert_eq!(is_jws_byte(b), expected, "byte {b:#04x}");
        }
    }

    /// From the `jwt` fuzz target (fuzz/regressions/jwt/invalid-utf8-in-ignored-claim): a claim
    /// tokengate does not read held a byte that is not UTF-8, and the token was accepted.
    #[test]
    fn json_that_is_not_utf8_is_refused_even_in_ignored_members() {
        let b64 = |bytes: &[u8]| BASE64URL.encode(bytes);
        let header = b64(br#"{"alg":"HS256"}"#);
        for payload in [
            &b"{\"\":\"\x9f\"}"[..],
            b"{\"sub\":\"tok\",\"x\":\"\xff\xfe\"}",
        ] {
            let token = format!("{header}.{}.{}", b64(payload), b64(b"sig"));
            assert_eq!(parse(token.as_bytes()).err(), Some(Reject::InvalidToken));
        }
        let bad_header = b64(b"{\"alg\":\"HS256\",\"x\":\"\xc3\"}");
        let token = format!("{bad_header}.{}.{}", b64(br#"{"sub":"tok"}"#), b64(b"sig"));
        assert_eq!(parse(token.as_bytes()).err(), Some(Reject::InvalidToken));
        // The same shapes in valid UTF-8 pass.
        let token = format!(
            "{header}.{}.{}",
            b64(r#"{"sub":"tok","x":"é"}"#.as_bytes()),
            b64(b"sig")
        );
        assert!(parse(token.as_bytes()).is_ok());
    }

    fn b64(text: &str) -> String {
        BASE64URL.encode(text)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("signature"))
    }

    const HS: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    #[test]
    fn parses_alg_claims_and_key_digest() {
        let t = token(
            HS,
            r#"{"sub":"tok","name":"Ann","exp":100,"nbf":50.7,"iat":40,"iss":"me"}"#,
        );
        let jwt = parse(t.as_bytes()).unwrap();
        assert_eq!(jwt.alg, JwtAlg::HS256);
        assert_eq!(jwt.key_digest, Some(token_digest(b"tok")));
        assert_eq!(jwt.claims.exp, Some(100));
        assert_eq!(jwt.claims.nbf, Some(50));
        assert_eq!(jwt.claims.name.as_deref(), Some("Ann"));
        assert_eq!(jwt.claims.iss.as_deref(), Some("me"));
        let mut buf = [0u8; MAX_SIGNATURE_LEN];
        assert_eq!(jwt.signature(&mut buf).unwrap(), b"signature");
        assert_eq!(jwt.signing_input, t.rsplit_once('.').unwrap().0.as_bytes());
    }

    #[test]
    fn key_claim_order() {
        let all = r#"{"sub":"c","workato_sub":"b","https://www.workato.com/sub":"a"}"#;
        assert_eq!(
            parse(token(HS, all).as_bytes()).unwrap().key_digest,
            Some(token_digest(b"a"))
        );
        let two = r#"{"sub":"c","workato_sub":"b"}"#;
        assert_eq!(
            parse(token(HS, two).as_bytes()).unwrap().key_digest,
            Some(token_digest(b"b"))
        );
        let empty_first = r#"{"sub":"c","workato_sub":""}"#;
        assert_eq!(
            parse(token(HS, empty_first).as_bytes()).unwrap().key_digest,
            Some(token_digest(b"c"))
        );
        let kid = token(r#"{"alg":"HS256","kid":"k"}"#, r#"{"sub":5}"#);
        assert_eq!(
            parse(kid.as_bytes()).unwrap().key_digest,
            Some(token_digest(b"k"))
        );
        let escaped = r#"{"sub":"tok"}"#;
        assert_eq!(
            parse(token(HS, escaped).as_bytes()).unwrap().key_digest,
            Some(token_digest(b"tok"))
        );
        assert_eq!(
            parse(token(HS, r#"{"name":"x"}"#).as_bytes())
                .unwrap()
                .key_digest,
            None
        );
    }

    #[test]
    fn refuses_bad_headers() {
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"hs256"}"#,
            r#"{"alg":"HS384"}"#,
            r#"{"typ":"JWT"}"#,
            r#"{"alg":"HS256","crit":["exp"]}"#,
            r#"{"alg":"HS256","alg":"HS256"}"#,
            r#"{"alg":"HS256","alg":"RS256"}"#,
            r#"{"alg":256}"#,
            r#"["alg"]"#,
            r#"{"alg":"HS256"} trailing"#,
        ] {
            assert_eq!(
                parse(token(header, r#"{"sub":"t"}"#).as_bytes()).unwrap_err(),
                Reject::InvalidToken,
                "{header}"
            );
        }
    }

    #[test]
    fn refuses_bad_payloads() {
        for payload in [
            r#"{"sub":"t","exp":"100"}"#,
            r#"{"sub":"t","nbf":null}"#,
            r#"{"sub":"t","iat":true}"#,
            r#"{"sub":"t","sub":"u"}"#,
            r#"not json"#,
        ] {
            assert_eq!(
                parse(token(HS, payload).as_bytes()).unwrap_err(),
                Reject::InvalidToken,
                "{payload}"
            );
        }
    }

    #[test]
    fn refuses_bad_shapes() {
        let good = token(HS, r#"{"sub":"t"}"#);
        let (input, _) = good.rsplit_once('.').unwrap();
        for bad in [
            String::new(),
            format!("{input}."),
            input.to_owned(),
            format!("{good}.x"),
            format!("{input}.c2lnbmF0dXJl="),
            good.replace('.', " "),
            format!("{good}+"),
            "a".repeat(MAX_JWT_LEN + 1),
            format!("{}.{}.sig", b64(HS).to_owned() + "=", b64(r#"{"sub":"t"}"#)),
        ] {
            assert_eq!(
                parse(bad.as_bytes()).unwrap_err(),
                Reject::InvalidToken,
                "{bad}"
            );
        }
        // "Hi" is "SGk"; "SGl" carries non-zero trailing bits: non-canonical.
        let mut buf = [0u8; MAX_SIGNATURE_LEN];
        let noncanonical = format!("{input}.SGl");
        let jwt = parse(noncanonical.as_bytes()).unwrap();
        assert_eq!(jwt.signature(&mut buf), Err(Reject::InvalidToken));
        let canonical = format!("{input}.SGk");
        let jwt = parse(canonical.as_bytes()).unwrap();
        assert_eq!(jwt.signature(&mut buf).unwrap(), b"Hi");
    }

    #[test]
    fn times_with_leeway() {
        assert_eq!(check_times(Some(100), None, 0, 99), Ok(()));
        assert_eq!(
            check_times(Some(100), None, 0, 100),
            Err(Reject::TokenExpired)
        );
        assert_eq!(check_times(Some(100), None, 60, 159), Ok(()));
        assert_eq!(
            check_times(None, Some(100), 0, 99),
            Err(Reject::TokenNotYetValid)
        );
        assert_eq!(check_times(None, Some(100), 60, 40), Ok(()));
        assert_eq!(check_times(Some(i64::MAX), Some(i64::MIN), 60, 0), Ok(()));
    }

    #[test]
    fn claim_rules() {
        let mut required = ClaimSet::default();
        required.insert("exp");
        let rules = ClaimRules {
            required,
            leeway_s: 60,
            ..ClaimRules::default()
        };
        let mut claims = Claims::default();
        assert_eq!(check_claims(&claims, &rules, 0), Err(Reject::InvalidToken));
        claims.exp = Some(1000);
        claims.present.insert("exp");
        assert_eq!(check_claims(&claims, &rules, 0), Ok(()));

        let lifetime = ClaimRules {
            max_lifetime_s: Some(300),
            leeway_s: 60,
            ..ClaimRules::default()
        };
        assert_eq!(
            check_claims(&claims, &lifetime, 0),
            Err(Reject::InvalidToken)
        );
        assert_eq!(check_claims(&claims, &lifetime, 800), Ok(()));
        claims.iat = Some(0);
        assert_eq!(
            check_claims(&claims, &lifetime, 800),
            Err(Reject::InvalidToken)
        );
        assert_eq!(
            check_claims(&Claims::default(), &lifetime, 0),
            Err(Reject::InvalidToken)
        );

        let issuers = ClaimRules {
            allowed_issuers: vec!["a".into()].into(),
            ..ClaimRules::default()
        };
        assert_eq!(
            check_claims(&Claims::default(), &issuers, 0),
            Err(Reject::InvalidToken)
        );
        let from_a = Claims {
            iss: Some("a".into()),
            ..Claims::default()
        };
        assert_eq!(check_claims(&from_a, &issuers, 0), Ok(()));
        let from_b = Claims {
            iss: Some("b".into()),
            ..Claims::default()
        };
        assert_eq!(
            check_claims(&from_b, &issuers, 0),
            Err(Reject::InvalidToken)
        );
    }
}
