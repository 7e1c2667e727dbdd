//! Private keys for `tokengate jwt sign`: OpenSSH (as `ssh-keygen -t rsa` writes), PEM PKCS#1 and PKCS#8.
//!
//! PKCS#1 and PKCS#8 DER go to *ring* as they are. An OpenSSH key holds n, e, d, iqmp, p and q
//! but not the CRT exponents *ring* wants, so dP = d mod (p-1) and dQ = d mod (q-1) are computed
//! here with plain big-integer arithmetic (once, when the key is loaded).

use num_bigint::BigUint;
use ring::rand::SystemRandom;
use ring::rsa::{KeyPairComponents, PublicKeyComponents};
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};

use crate::core::keys::{
    bit_length, pem_decode, Der, KeyError, SshReader, OID_RSA_ENCRYPTION, TAG_OCTET_STRING,
    TAG_OID, TAG_SEQUENCE,
};

/// The longest modulus *ring* signs with, in bits.
const MAX_SIGNING_BITS: usize = 4096;

/// An RSA private key able to make RS256 signatures.
pub struct RsaSigningKey {
    pair: RsaKeyPair,
    bits: usize,
    rng: SystemRandom,
}

impl std::fmt::Debug for RsaSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaSigningKey({} bits, ..)", self.bits)
    }
}

impl RsaSigningKey {
    /// Parses the text of a private key file: OpenSSH (unencrypted), PEM `RSA PRIVATE KEY` or PEM `PRIVATE KEY`.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let pem = pem_decode(text.trim())?.ok_or(KeyError::UnrecognizedFormat)?;
        match pem.label {
            "OPENSSH PRIVATE KEY" => Self::from_openssh(&pem.der),
            "RSA PRIVATE KEY" => Self::from_pkcs1_der(&pem.der),
            "PRIVATE KEY" => Self::from_pkcs8_der(&pem.der),
            "ENCRYPTED PRIVATE KEY" => Err(KeyError::Encrypted),
            "EC PRIVATE KEY" | "DSA PRIVATE KEY" => Err(KeyError::NotRsa),
            _ => Err(KeyError::UnrecognizedFormat),
        }
    }

    /// Parses a DER PKCS#1 `RSAPrivateKey`.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, KeyError> {
        let bits = pkcs1_private_modulus_bits(der)?;
        check_signing_bits(bits)?;
        let pair = RsaKeyPair::from_der(der).map_err(rejected)?;
        Ok(Self::new(pair, bits))
    }

    /// Parses a DER PKCS#8 `PrivateKeyInfo` holding an RSA key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let mut outer = Der::new(der);
        let mut info = Der::new(outer.take(TAG_SEQUENCE)?);
        outer.finish()?;
        info.unsigned()?; // version
        let mut algorithm = Der::new(info.take(TAG_SEQUENCE)?);
        if algorithm.take(TAG_OID)? != OID_RSA_ENCRYPTION {
            return Err(KeyError::NotRsa);
        }
        let bits = pkcs1_private_modulus_bits(info.take(TAG_OCTET_STRING)?)?;
        check_signing_bits(bits)?;
        let pair = RsaKeyPair::from_pkcs8(der).map_err(rejected)?;
        Ok(Self::new(pair, bits))
    }

    /// Parses the decoded body of an `OPENSSH PRIVATE KEY` block (openssh-key-v1, unencrypted).
    fn from_openssh(blob: &[u8]) -> Result<Self, KeyError> {
        let body = blob
            .strip_prefix(b"openssh-key-v1\0")
            .ok_or(KeyError::Malformed(
                "the OpenSSH private key has no openssh-key-v1 header",
            ))?;
        let mut outer = SshReader::new(body);
        let cipher = outer.string()?;
        let kdf = outer.string()?;
        outer.string()?; // KDF options
        if cipher != b"none" || kdf != b"none" {
            return Err(KeyError::Encrypted);
        }
        if outer.u32()? != 1 {
            return Err(KeyError::Malformed(
                "the OpenSSH file must hold exactly one key",
            ));
        }
        outer.string()?; // the public key, repeated inside the private section
        let mut private = SshReader::new(outer.string()?);
        if !outer.is_empty() {
            return Err(KeyError::Malformed(
                "the OpenSSH private key has trailing bytes",
            ));
        }
        if private.u32()? != private.u32()? {
            return Err(KeyError::Malformed("the OpenSSH check numbers differ"));
        }
        if private.string()? != b"ssh-rsa" {
            return Err(KeyError::NotRsa);
        }
        let n = private.mpint()?;
        let e = private.mpint()?;
        let d = private.mpint()?;
        let q_inv = private.mpint()?;
        let p = private.mpint()?;
        let q = private.mpint()?;
        private.string()?; // comment
        let padding_ok = private
            .rest()
            .iter()
            .enumerate()
            .all(|(i, &b)| usize::from(b) == i + 1);
        if !padding_ok {
            return Err(KeyError::Malformed(
                "the OpenSSH private key padding is wrong",
            ));
        }
        let bits = bit_length(n);
        check_signing_bits(bits)?;
        if [d, p, q, q_inv].iter().any(|x| x.len() > n.len()) {
            return Err(KeyError::Malformed(
                "the RSA key components are inconsistent",
            ));
        }
        let d_p = crt_exponent(d, p)?;
        let d_q = crt_exponent(d, q)?;
        let pair = RsaKeyPair::from_components(&KeyPairComponents {
            public_key: PublicKeyComponents { n, e },
            d,
            p,
            q,
            dP: d_p.as_slice(),
            dQ: d_q.as_slice(),
            qInv: q_inv,
        })
        .map_err(rejected)?;
        Ok(Self::new(pair, bits))
    }

    fn new(pair: RsaKeyPair, bits: usize) -> Self {
        Self {
            pair,
            bits,
            rng: SystemRandom::new(),
        }
    }

    /// The modulus length in bits.
    pub fn modulus_bits(&self) -> usize {
        self.bits
    }

    /// The public modulus and exponent, big-endian without leading zeros.
    pub fn public_key_components(&self) -> (Vec<u8>, Vec<u8>) {
        let public: PublicKeyComponents<Vec<u8>> = self.pair.public().into();
        (public.n, public.e)
    }

    /// Signs `data` with RSASSA-PKCS1-v1_5 SHA-256.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut signature = vec![0u8; self.pair.public().modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &self.rng, data, &mut signature)
            .map_err(|_| KeyError::Malformed("the RSA signing operation failed"))?;
        Ok(signature)
    }
}

/// The modulus length of a DER PKCS#1 `RSAPrivateKey` (`SEQUENCE { version, n, … }`).
fn pkcs1_private_modulus_bits(der: &[u8]) -> Result<usize, KeyError> {
    let mut key = Der::new(Der::new(der).take(TAG_SEQUENCE)?);
    key.unsigned()?; // version
    Ok(bit_length(key.unsigned()?))
}

/// Refuses moduli *ring* will not sign with, naming the too-small case precisely.
fn check_signing_bits(bits: usize) -> Result<(), KeyError> {
    if bits < 2048 {
        return Err(KeyError::ModulusTooSmall { bits });
    }
    if bits > MAX_SIGNING_BITS {
        return Err(KeyError::Malformed(
            "RSA keys longer than 4096 bits cannot be used for signing",
        ));
    }
    Ok(())
}

/// `d mod (prime - 1)`, big-endian.
fn crt_exponent(d: &[u8], prime: &[u8]) -> Result<Vec<u8>, KeyError> {
    let prime = BigUint::from_bytes_be(prime);
    if prime <= BigUint::from(2u32) {
        return Err(KeyError::Malformed("an RSA prime is too small"));
    }
    let value = BigUint::from_bytes_be(d) % (prime - 1u32);
    Ok(value.to_bytes_be())
}

/// Turns *ring*'s reason for refusing a private key into a sentence fragment.
fn rejected(error: ring::error::KeyRejected) -> KeyError {
    KeyError::Malformed(match error.to_string().as_str() {
        "InconsistentComponents" => "the RSA key components are inconsistent",
        "InvalidComponent" => "an RSA key component is invalid",
        "InvalidEncoding" => "the RSA private key encoding is invalid",
        "TooSmall" => "the RSA public exponent is below 65537",
        "TooLarge" => "an RSA key component is too large",
        "VersionNotSupported" => "the RSA private key version is not supported (multi-prime?)",
        "WrongAlgorithm" => "the private key is not an RSA key",
        "PrivateModulusLenNotMultipleOf512Bits" => {
            "the RSA primes' lengths are not a multiple of 512 bits"
        }
        _ => "the RSA private key was refused",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crt_exponent_is_d_mod_p_minus_one() {
        assert_eq!(crt_exponent(&[100], &[11]).unwrap(), vec![0]);
        assert_eq!(crt_exponent(&[103], &[11]).unwrap(), vec![3]);
        assert!(crt_exponent(&[5], &[2]).is_err());
        assert!(crt_exponent(&[5], &[]).is_err());
    }

    #[test]
    fn non_key_text_is_refused() {
        assert_eq!(
            RsaSigningKey::parse("").unwrap_err(),
            KeyError::UnrecognizedFormat
        );
        assert_eq!(
            RsaSigningKey::parse(
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----"
            )
            .unwrap_err(),
            KeyError::Encrypted
        );
    }
}
