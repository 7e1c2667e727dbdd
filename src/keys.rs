//! Verification keys, parsed once when a profile is compiled: HMAC secrets and RSA public keys.
//!
//! INTERFACE STUB — the keys helper replaces the bodies; signatures are the contract.

use std::fmt;

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
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for KeyError {}

/// An HS256 key.
pub struct HmacKey {}

impl HmacKey {
    /// Builds the key from the secret exactly as pasted (its UTF-8 bytes), or base64-decoded.
    pub fn from_secret(_secret: &str, _is_base64: bool) -> Result<Self, KeyError> {
        todo!()
    }

    /// Checks `signature` over `signing_input` in constant time.
    pub fn verify(&self, _signing_input: &[u8], _signature: &[u8]) -> bool {
        todo!()
    }

    /// Signs `data` (for `tokengate jwt sign` and tests).
    pub fn sign(&self, _data: &[u8]) -> [u8; 32] {
        todo!()
    }
}

/// An RS256 public key (RSASSA-PKCS1-v1_5 with SHA-256, modulus at least 2048 bits).
pub struct RsaPublicKey {}

impl RsaPublicKey {
    /// Parses an OpenSSH `ssh-rsa` line, PEM `PUBLIC KEY`, PEM `RSA PUBLIC KEY` or PEM `CERTIFICATE`.
    pub fn parse(_text: &str) -> Result<Self, KeyError> {
        todo!()
    }

    /// Builds the key from big-endian modulus and exponent (JWK `n`, `e`).
    pub fn from_components(_n: &[u8], _e: &[u8]) -> Result<Self, KeyError> {
        todo!()
    }

    /// The modulus length in bits.
    pub fn modulus_bits(&self) -> usize {
        todo!()
    }

    /// Checks an RS256 `signature` over `signing_input`.
    pub fn verify(&self, _signing_input: &[u8], _signature: &[u8]) -> bool {
        todo!()
    }
}
