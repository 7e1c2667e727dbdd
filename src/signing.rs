//! Private keys for `tokengate jwt sign`: OpenSSH (as `ssh-keygen -t rsa` writes), PEM PKCS#1 and PKCS#8.
//!
//! INTERFACE STUB — the keys helper replaces the bodies; signatures are the contract.

use crate::keys::KeyError;

/// An RSA private key able to make RS256 signatures.
pub struct RsaSigningKey {}

impl RsaSigningKey {
    /// Parses the text of a private key file: OpenSSH (unencrypted), PEM `RSA PRIVATE KEY` or PEM `PRIVATE KEY`.
    pub fn parse(_text: &str) -> Result<Self, KeyError> {
        todo!()
    }

    /// Signs `data` with RSASSA-PKCS1-v1_5 SHA-256.
    pub fn sign(&self, _data: &[u8]) -> Result<Vec<u8>, KeyError> {
        todo!()
    }
}
