//! Verification keys, parsed once when a profile is compiled: HMAC secrets and RSA public keys.
//!
//! Parsing is done by hand (a small PEM splitter, a strict DER reader and an OpenSSH wire reader)
//! so that there is one crypto stack, *ring*, and little code to fuzz. Every parser returns
//! `Err` on any input it does not understand; none of them panics.

mod encoding;

pub(crate) use encoding::*;

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use ring::{hmac, signature};

/// Why a key was refused; each message names the problem without echoing the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// An HMAC secret with fewer than 32 bytes.
    SecretTooShort {
        /// How many bytes the secret had.
        bytes: usize,
    },
    /// `secret_is_base64` was set but the secret is not valid base64.
    SecretNotBase64,
    /// The text is none of the accepted public key formats.
    UnrecognizedFormat,
    /// The key is of a recognized format but malformed.
    Malformed(&'static str),
    /// The key is not an RSA key.
    NotRsa,
    /// The RSA modulus is shorter than 2048 bits.
    ModulusTooSmall {
        /// The modulus length in bits.
        bits: usize,
    },
    /// The private key is protected by a passphrase, which `tokengate jwt sign` does not take.
    Encrypted,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SecretTooShort { bytes } => write!(
                f,
                "The HMAC secret is {bytes} bytes long; at least {MIN_SECRET_BYTES} bytes are required."
            ),
            Self::SecretNotBase64 => f.write_str(
                "The secret is marked as base64 but is not valid standard base64.",
            ),
            Self::UnrecognizedFormat => f.write_str(
                "The key is in none of the accepted formats: an OpenSSH `ssh-rsa` line, \
                 or a PEM PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE (for signing: an OpenSSH \
                 private key, or a PEM RSA PRIVATE KEY or PRIVATE KEY).",
            ),
            Self::Malformed(why) => write!(f, "The key is malformed: {why}."),
            Self::NotRsa => f.write_str("The key is not an RSA key; only RSA keys are accepted."),
            Self::ModulusTooSmall { bits } => write!(
                f,
                "The RSA key is {bits} bits long; at least {MIN_MODULUS_BITS} bits are required."
            ),
            Self::Encrypted => f.write_str(
                "The private key is encrypted with a passphrase; remove the passphrase from a copy \
                 (for example `ssh-keygen -p -N '' -f COPY`) and use that copy.",
            ),
        }
    }
}

impl std::error::Error for KeyError {}

/// The shortest HS256 secret accepted, in bytes (RFC 7518 §3.2: at least the hash size).
const MIN_SECRET_BYTES: usize = 32;
/// The shortest RSA modulus accepted, in bits.
const MIN_MODULUS_BITS: usize = 2048;
/// The longest RSA modulus accepted, in bits (*ring*'s verification limit).
const MAX_MODULUS_BITS: usize = 8192;
/// The largest RSA public exponent *ring* verifies with: 2^33 - 1.
const MAX_EXPONENT: u64 = (1 << 33) - 1;

/// Standard base64 that takes input with or without `=` padding.
pub(crate) const BASE64_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An HS256 key.
#[derive(Clone)]
pub struct HmacKey {
    key: hmac::Key,
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey(HS256, ..)")
    }
}

impl HmacKey {
    /// Builds the key from the secret exactly as pasted (its UTF-8 bytes), or base64-decoded.
    ///
    /// With `is_base64`, standard base64 with or without padding is decoded after removing all
    /// whitespace (so a wrapped `openssl rand -base64 64` output works). Without it, the string's
    /// bytes are the key as they are: nothing is trimmed.
    pub fn from_secret(secret: &str, is_base64: bool) -> Result<Self, KeyError> {
        if is_base64 {
            let compact: Vec<u8> = secret
                .bytes()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            let bytes = BASE64_ANY_PAD
                .decode(compact)
                .map_err(|_| KeyError::SecretNotBase64)?;
            Self::from_bytes(&bytes)
        } else {
            Self::from_bytes(secret.as_bytes())
        }
    }

    /// Builds the key from raw bytes (e.g. a decoded JWK `k`); fewer than 32 bytes are refused.
    pub fn from_bytes(key: &[u8]) -> Result<Self, KeyError> {
        if key.len() < MIN_SECRET_BYTES {
            return Err(KeyError::SecretTooShort { bytes: key.len() });
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        })
    }

    /// Checks `signature` over `signing_input` in constant time.
    pub fn verify(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        hmac::verify(&self.key, signing_input, signature).is_ok()
    }

    /// Signs `data` (for `tokengate jwt sign` and tests).
    pub fn sign(&self, data: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&self.key, data).as_ref());
        out
    }
}

/// An RS256 public key (RSASSA-PKCS1-v1_5 with SHA-256, modulus at least 2048 bits).
///
/// Holds the modulus and exponent, big-endian without leading zeros, already checked against
/// every rule *ring* applies when verifying, and *ring*'s parsed form of them (the modulus and
/// its Montgomery constants), so `verify` can fail only on the signature and does no key
/// setup: parsing the key on every verify was about a fifth of an RS256 cache miss.
#[derive(Clone)]
pub struct RsaPublicKey {
    n: Box<[u8]>,
    e: Box<[u8]>,
    bits: usize,
    parsed: Arc<signature::RsaParsedPublicKey>,
}

/// Two keys are equal when their modulus and exponent are.
impl PartialEq for RsaPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.n == other.n && self.e == other.e
    }
}

impl Eq for RsaPublicKey {}

impl fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaPublicKey({} bits, ..)", self.bits)
    }
}

impl RsaPublicKey {
    /// Parses an OpenSSH `ssh-rsa` line, PEM `PUBLIC KEY`, PEM `RSA PUBLIC KEY` or PEM `CERTIFICATE`.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if let Some(pem) = pem_decode(text)? {
            return match pem.label {
                "PUBLIC KEY" => Self::from_spki_der(&pem.der),
                "RSA PUBLIC KEY" => Self::from_pkcs1_der(&pem.der),
                "CERTIFICATE" => Self::from_certificate_der(&pem.der),
                _ => Err(KeyError::UnrecognizedFormat),
            };
        }
        let mut words = text.split_ascii_whitespace();
        match words.next() {
            Some("ssh-rsa") => {
                let data = words
                    .next()
                    .ok_or(KeyError::Malformed("the ssh-rsa line has no key data"))?;
                Self::from_openssh_blob(data)
            }
            Some(kind) if is_ssh_key_type(kind) => Err(KeyError::NotRsa),
            _ => Err(KeyError::UnrecognizedFormat),
        }
    }

    /// Builds the key from big-endian modulus and exponent (JWK `n`, `e`).
    ///
    /// Leading zero bytes are ignored. Refuses moduli under 2048 or over 8192 bits, even moduli,
    /// and exponents *ring* cannot verify with (even, below 3, or above 2^33 - 1).
    pub fn from_components(n: &[u8], e: &[u8]) -> Result<Self, KeyError> {
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        let bits = bit_length(n);
        if bits < MIN_MODULUS_BITS {
            return Err(KeyError::ModulusTooSmall { bits });
        }
        if bits > MAX_MODULUS_BITS {
            return Err(KeyError::Malformed(
                "the RSA modulus is longer than 8192 bits",
            ));
        }
        if n.last().is_some_and(|b| b & 1 == 0) {
            return Err(KeyError::Malformed("the RSA modulus is even"));
        }
        let e_value = match e.len() {
            1..=5 => e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
            _ => 0,
        };
        if !(3..=MAX_EXPONENT).contains(&e_value) || e_value & 1 == 0 {
            return Err(KeyError::Malformed(
                "the RSA public exponent must be odd and between 3 and 2^33 - 1",
            ));
        }
        // The checks above are ring's own, so this only fails if ring's rules change.
        let parsed =
            signature::RsaParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, n, e)
                .map_err(|_| KeyError::Malformed("ring refused the RSA public key"))?;
        Ok(Self {
            n: n.into(),
            e: e.into(),
            bits,
            parsed: Arc::new(parsed),
        })
    }

    /// Parses a DER `SubjectPublicKeyInfo` whose algorithm is rsaEncryption.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let mut outer = Der::new(der);
        let spki = outer.take(TAG_SEQUENCE)?;
        outer.finish()?;
        Self::from_spki_contents(spki)
    }

    /// Parses a DER PKCS#1 `RSAPublicKey` (`SEQUENCE { n INTEGER, e INTEGER }`).
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, KeyError> {
        let mut outer = Der::new(der);
        let mut key = Der::new(outer.take(TAG_SEQUENCE)?);
        outer.finish()?;
        let n = key.unsigned()?;
        let e = key.unsigned()?;
        key.finish()?;
        Self::from_components(n, e)
    }

    /// Takes the subject public key of a DER X.509 certificate (nothing else in it is checked).
    pub fn from_certificate_der(der: &[u8]) -> Result<Self, KeyError> {
        let mut outer = Der::new(der);
        let mut cert = Der::new(outer.take(TAG_SEQUENCE)?);
        outer.finish()?;
        let mut tbs = Der::new(cert.take(TAG_SEQUENCE)?);
        let (mut tag, _) = tbs.any()?;
        if tag == TAG_CONTEXT_0 {
            (tag, _) = tbs.any()?; // [0] version, then serialNumber
        }
        if tag != TAG_INTEGER {
            return Err(KeyError::Malformed("the certificate has no serial number"));
        }
        // signature algorithm, issuer, validity, subject, then the key.
        for _ in 0..4 {
            tbs.take(TAG_SEQUENCE)?;
        }
        Self::from_spki_contents(tbs.take(TAG_SEQUENCE)?)
    }

    /// The modulus length in bits.
    pub fn modulus_bits(&self) -> usize {
        self.bits
    }

    /// The modulus `n`, big-endian, without leading zeros.
    pub fn modulus(&self) -> &[u8] {
        &self.n
    }

    /// The public exponent `e`, big-endian, without leading zeros.
    pub fn exponent(&self) -> &[u8] {
        &self.e
    }

    /// Checks an RS256 `signature` over `signing_input`.
    pub fn verify(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        self.parsed.verify(signing_input, signature).is_ok()
    }

    /// The contents of a `SubjectPublicKeyInfo` SEQUENCE.
    fn from_spki_contents(spki: &[u8]) -> Result<Self, KeyError> {
        let mut spki = Der::new(spki);
        let mut algorithm = Der::new(spki.take(TAG_SEQUENCE)?);
        let key_bits = spki.take(TAG_BIT_STRING)?;
        spki.finish()?;
        if algorithm.take(TAG_OID)? != OID_RSA_ENCRYPTION {
            return Err(KeyError::NotRsa);
        }
        if !algorithm.is_empty() && !algorithm.take(TAG_NULL)?.is_empty() {
            return Err(KeyError::Malformed(
                "the rsaEncryption parameters are not NULL",
            ));
        }
        algorithm.finish()?;
        match key_bits {
            [0, pkcs1 @ ..] => Self::from_pkcs1_der(pkcs1),
            _ => Err(KeyError::Malformed(
                "the key's BIT STRING is not whole bytes",
            )),
        }
    }

    /// The base64 key data of an `ssh-rsa` line: string "ssh-rsa", mpint e, mpint n.
    fn from_openssh_blob(data: &str) -> Result<Self, KeyError> {
        let blob = BASE64_ANY_PAD
            .decode(data)
            .map_err(|_| KeyError::Malformed("the ssh-rsa key data is not valid base64"))?;
        let mut wire = SshReader::new(&blob);
        if wire.string()? != b"ssh-rsa" {
            return Err(KeyError::NotRsa);
        }
        let e = wire.mpint()?;
        let n = wire.mpint()?;
        if !wire.is_empty() {
            return Err(KeyError::Malformed(
                "the ssh-rsa key data has trailing bytes",
            ));
        }
        Self::from_components(n, e)
    }
}

/// Key type names of OpenSSH public key lines that are not RSA.
fn is_ssh_key_type(word: &str) -> bool {
    ["ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-"]
        .iter()
        .any(|prefix| word.starts_with(prefix))
}

/// What to say when a private key is given where a public key belongs (never echoes the key).
pub const PRIVATE_KEY_GIVEN: &str = "is a private key; give the public key instead (the .pub line ssh-keygen wrote, or the output of: openssl rsa -in KEY -pubout). Keep the private key with the client";

/// Whether `text` holds a private key: a PEM block whose label ends in `PRIVATE KEY` (PKCS#1
/// `RSA PRIVATE KEY`, PKCS#8 `PRIVATE KEY` and `ENCRYPTED PRIVATE KEY`, SEC1 `EC PRIVATE KEY`,
/// `OPENSSH PRIVATE KEY`) or a PuTTY key file. The admin API and the CLI use it to refuse a
/// private key given where a public key belongs, before it is stored or sent (RFC 7468 labels).
pub fn looks_like_private_key(text: &str) -> bool {
    if text.trim_start().starts_with("PuTTY-User-Key-File") {
        return true;
    }
    text.match_indices("-----BEGIN ").any(|(at, begin)| {
        let rest = &text[at + begin.len()..];
        rest.find("-----")
            .is_some_and(|end| rest[..end].trim_end().ends_with("PRIVATE KEY"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_keys_are_recognized() {
        for private in [
            "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----",
            "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF\n-----END ENCRYPTED PRIVATE KEY-----",
            "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----",
            "PuTTY-User-Key-File-3: ssh-rsa\nEncryption: none\n",
        ] {
            assert!(looks_like_private_key(private), "{private}");
        }
        for public in [
            "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
            "-----BEGIN RSA PUBLIC KEY-----\nMIIB\n-----END RSA PUBLIC KEY-----",
            "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----",
            "ssh-rsa AAAAB3NzaC1yc2E me@host",
            "-----BEGIN ",
        ] {
            assert!(!looks_like_private_key(public), "{public}");
        }
    }

    #[test]
    fn hmac_secret_is_used_as_pasted() {
        let secret = "FXHiW/Vb+MZBSYJaYa2IRCQHXVcq3N3NmZWZ089MQsg=";
        let as_text = HmacKey::from_secret(secret, false).unwrap();
        let as_bytes = HmacKey::from_bytes(secret.as_bytes()).unwrap();
        assert_eq!(as_text.sign(b"x"), as_bytes.sign(b"x"));
        // The same string read as base64 is only 32 bytes, and a different key.
        let decoded = HmacKey::from_secret(secret, true).unwrap();
        assert_ne!(decoded.sign(b"x"), as_text.sign(b"x"));
    }

    #[test]
    fn hmac_secret_length_and_base64_rules() {
        assert_eq!(
            HmacKey::from_secret("short", false).unwrap_err(),
            KeyError::SecretTooShort { bytes: 5 }
        );
        // 31 bytes of base64 → too short; 32 → fine, with or without padding and whitespace.
        let b31 = BASE64_ANY_PAD.encode([7u8; 31]);
        assert_eq!(
            HmacKey::from_secret(&b31, true).unwrap_err(),
            KeyError::SecretTooShort { bytes: 31 }
        );
        let b32 = BASE64_ANY_PAD.encode([7u8; 32]);
        let reference = HmacKey::from_bytes(&[7u8; 32]).unwrap().sign(b"m");
        for text in [
            b32.clone(),
            b32.trim_end_matches('=').to_owned(),
            format!("  {b32}\n"),
            format!("{}\n{}", &b32[..20], &b32[20..]),
        ] {
            assert_eq!(
                HmacKey::from_secret(&text, true).unwrap().sign(b"m"),
                reference
            );
        }
        assert_eq!(
            HmacKey::from_secret("not base64 at all!!", true).unwrap_err(),
            KeyError::SecretNotBase64
        );
        // A 32-byte secret with surrounding spaces keeps them (they are part of the key).
        let spaced = format!(" {} ", "k".repeat(30));
        assert!(HmacKey::from_secret(&spaced, false).is_ok());
    }

    #[test]
    fn hmac_verify_rejects_wrong_lengths() {
        let key = HmacKey::from_bytes(&[1u8; 32]).unwrap();
        let tag = key.sign(b"msg");
        assert!(key.verify(b"msg", &tag));
        assert!(!key.verify(b"msg", &tag[..31]));
        assert!(!key.verify(b"msg", &[]));
        let mut long = tag.to_vec();
        long.push(0);
        assert!(!key.verify(b"msg", &long));
        assert!(!key.verify(b"other", &tag));
    }

    fn modulus(bits: usize) -> Vec<u8> {
        let mut n = vec![0xFFu8; bits.div_ceil(8)];
        if !bits.is_multiple_of(8) {
            n[0] = 0xFF >> (8 - bits % 8);
        }
        n
    }

    #[test]
    fn components_are_checked_as_ring_would() {
        let e = [1, 0, 1];
        let key = RsaPublicKey::from_components(&modulus(2048), &e).unwrap();
        assert_eq!(key.modulus_bits(), 2048);
        // Leading zeros are stripped before counting.
        let mut padded = vec![0, 0];
        padded.extend(modulus(2048));
        assert_eq!(
            RsaPublicKey::from_components(&padded, &[0, 1, 0, 1]).unwrap(),
            key
        );
        assert_eq!(
            RsaPublicKey::from_components(&modulus(2047), &e).unwrap_err(),
            KeyError::ModulusTooSmall { bits: 2047 }
        );
        assert_eq!(
            RsaPublicKey::from_components(&[], &e).unwrap_err(),
            KeyError::ModulusTooSmall { bits: 0 }
        );
        assert!(RsaPublicKey::from_components(&modulus(8192), &e).is_ok());
        assert!(matches!(
            RsaPublicKey::from_components(&modulus(8193), &e),
            Err(KeyError::Malformed(_))
        ));
        let mut even = modulus(2048);
        even[255] = 0xFE;
        assert!(RsaPublicKey::from_components(&even, &e).is_err());
        for bad_e in [
            &[][..],
            &[1],
            &[2],
            &[4],
            &[1, 0, 0],
            &[2, 0, 0, 0, 1],
            &[1, 0, 0, 0, 0, 1],
        ] {
            assert!(
                RsaPublicKey::from_components(&modulus(2048), bad_e).is_err(),
                "{bad_e:?}"
            );
        }
        for good_e in [&[3][..], &[1, 0xFF, 0xFF, 0xFF, 0xFF]] {
            assert!(RsaPublicKey::from_components(&modulus(2048), good_e).is_ok());
        }
    }

    #[test]
    fn der_lengths_must_be_minimal_and_whole() {
        assert!(Der::new(&[0x30, 0x81, 0x05, 1, 2, 3, 4, 5]).any().is_err());
        assert!(Der::new(&[0x30, 0x80, 0, 0]).any().is_err());
        assert!(Der::new(&[0x30, 0x03, 1, 2]).any().is_err());
        assert!(Der::new(&[0x1F, 0x01, 0]).any().is_err());
        let mut ok = Der::new(&[0x02, 0x02, 0x00, 0x80]);
        assert_eq!(ok.unsigned().unwrap(), &[0x80]);
        assert!(Der::new(&[0x02, 0x02, 0x00, 0x7F]).unsigned().is_err());
        assert!(Der::new(&[0x02, 0x01, 0x80]).unsigned().is_err());
    }

    #[test]
    fn pem_blocks_are_split_strictly() {
        let pem = pem_decode("junk\n-----BEGIN X-----\nAAEC\nAw==\n-----END X-----\nmore")
            .unwrap()
            .unwrap();
        assert_eq!((pem.label, pem.der.as_slice()), ("X", &[0u8, 1, 2, 3][..]));
        assert!(pem_decode("no pem here").unwrap().is_none());
        assert!(pem_decode("-----BEGIN X-----\nAAEC\n-----END Y-----").is_err());
        assert!(pem_decode("-----BEGIN X").is_err());
        assert!(pem_decode("-----BEGIN X-----\n-----END X-----").is_err());
        assert!(pem_decode("-----BEGIN X-----\n%%%%\n-----END X-----").is_err());
        assert_eq!(
            pem_decode("-----BEGIN X-----\nProc-Type: 4,ENCRYPTED\n\nAAEC\n-----END X-----").err(),
            Some(KeyError::Encrypted)
        );
    }

    #[test]
    fn error_messages_are_sentences_without_key_material() {
        let errors = [
            KeyError::SecretTooShort { bytes: 5 },
            KeyError::SecretNotBase64,
            KeyError::UnrecognizedFormat,
            KeyError::Malformed("the DER data is invalid or cut off"),
            KeyError::NotRsa,
            KeyError::ModulusTooSmall { bits: 1024 },
            KeyError::Encrypted,
        ];
        for error in errors {
            let text = error.to_string();
            assert!(text.starts_with("The "), "{text}");
            assert!(text.ends_with('.'), "{text}");
        }
    }
}
