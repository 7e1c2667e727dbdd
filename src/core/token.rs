//! Auth tokens: generated from the OS CSPRNG, stored only as a SHA-256 digest plus a four-character mask.

use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};

use crate::core::model::StoredToken;

/// A SHA-256 digest of an auth token: the only form in which tokens are stored and looked up.
pub type TokenDigest = [u8; 32];

/// Whether `a` and `b` hold the same bytes, in time that depends only on their lengths (no
/// early exit at the first difference). For comparing a presented credential with one held in
/// memory, where a proxy may send several clients' requests on one connection.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

/// A freshly generated auth token: the raw value is shown once, the stored form is kept.
pub struct NewToken {
    /// The token, 64 lowercase hex characters; returned to the admin once, never stored.
    pub raw: String,
    /// Digest and mask, for the store.
    pub stored: StoredToken,
}

/// Generates a new auth token: 32 random bytes from the operating system, as 64 lowercase hex.
pub fn generate() -> Result<NewToken, ring::error::Unspecified> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes)?;
    let raw = hex(&bytes);
    let stored = StoredToken {
        sha256: hex(&token_digest(raw.as_bytes())),
        last4: raw[raw.len() - 4..].to_owned(),
    };
    Ok(NewToken { raw, stored })
}

/// Random identifier for stored objects: 16 random bytes as 32 lowercase hex.
pub fn random_id() -> Result<String, ring::error::Unspecified> {
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes)?;
    Ok(hex(&bytes))
}

/// SHA-256 of the token's bytes.
pub fn token_digest(token: &[u8]) -> TokenDigest {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token).as_ref());
    out
}

/// The masked form shown everywhere but at creation and refresh: `…` + last four characters.
pub fn mask(last4: &str) -> String {
    format!("…{last4}")
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Parses 64 lowercase-or-uppercase hex characters into a digest; `None` on any other input.
pub fn parse_digest_hex(text: &str) -> Option<TokenDigest> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
    }
    Some(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn constant_time_eq_compares_whole_slices() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
        let long: Vec<u8> = (0..=255).collect();
        let mut other = long.clone();
        assert!(constant_time_eq(&long, &other));
        other[250] ^= 1;
        assert!(
            !constant_time_eq(&long, &other),
            "a difference in the tail counts"
        );
        other[250] ^= 1;
        other[3] ^= 0x80;
        assert!(!constant_time_eq(&long, &other));
    }
    use super::*;

    #[test]
    fn generated_tokens_are_64_lowercase_hex_and_stored_as_digest() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a.raw, b.raw);
        assert_eq!(a.raw.len(), 64);
        assert!(a
            .raw
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_eq!(a.stored.last4, a.raw[60..]);
        assert_eq!(
            parse_digest_hex(&a.stored.sha256),
            Some(token_digest(a.raw.as_bytes()))
        );
        assert!(!a.stored.sha256.contains(&a.raw));
    }

    #[test]
    fn mask_shows_last_four() {
        assert_eq!(mask("4545"), "…4545");
    }

    #[test]
    fn digest_hex_rejects_wrong_shapes() {
        assert_eq!(parse_digest_hex("abc"), None);
        assert_eq!(parse_digest_hex(&"g".repeat(64)), None);
    }
}
