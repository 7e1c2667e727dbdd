//! HS256 secrets at rest: sealed with AES-256-GCM (`ring::aead`) under a 32-byte key that never
//! sits beside the rows it protects in the database.
//!
//! The key is given as base64 (what `openssl rand -base64 32` prints) in `TOKENGATE_SECRETS_KEY`,
//! or read from `<data-dir>/secrets.key`, which the first start generates (mode 0600). A sealed
//! value is `version (1 byte) ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`; the profile id is
//! the associated data, so a sealed secret copied onto another profile's row does not open.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use super::{ensure_data_dir, write_atomically, StoreError, StoreErrorKind};

/// Name of the secrets key file inside the data directory.
pub const SECRETS_KEY_FILE: &str = "secrets.key";
/// The environment variable that gives the secrets key.
pub const SECRETS_KEY_ENV: &str = "TOKENGATE_SECRETS_KEY";
/// First byte of every sealed value this build writes.
const SEALED_VERSION: u8 = 1;

/// The AES-256-GCM key that seals HS256 secrets.
pub struct SecretsKey {
    /// The key, ready for sealing and opening.
    key: LessSafeKey,
}

impl fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretsKey(<redacted>)")
    }
}

/// Where the secrets key came from; the caller logs it (the path, never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsKeySource {
    /// From `TOKENGATE_SECRETS_KEY`.
    Environment,
    /// Read from this existing file.
    File(PathBuf),
    /// Generated on this first start and written to this file (mode 0600).
    Created(PathBuf),
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFailed;

impl SecretsKey {
    /// The key whose base64 text (standard alphabet, padding optional) is `text`.
    ///
    /// Errors: a sentence saying the text is not base64 or not 32 bytes; never the text itself.
    pub fn from_base64(text: &str) -> Result<SecretsKey, String> {
        let text = text.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|_| "is not base64 (make one with: openssl rand -base64 32)".to_owned())?;
        if bytes.len() != 32 {
            return Err(format!(
                "decodes to {} bytes; it must be 32 (make one with: openssl rand -base64 32)",
                bytes.len()
            ));
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| "is not a valid AES-256 key".to_owned())?;
        Ok(SecretsKey {
            key: LessSafeKey::new(key),
        })
    }

    /// Seals `plaintext` for the row `id`: a fresh random nonce per value.
    pub fn seal(&self, id: &str, plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| random_failed(Path::new(SECRETS_KEY_FILE)))?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + 16);
        sealed.push(SEALED_VERSION);
        sealed.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id.as_bytes()),
                &mut body,
            )
            .map_err(|_| StoreError {
                kind: StoreErrorKind::Io,
                path: PathBuf::from(SECRETS_KEY_FILE),
                message: "cannot seal a secret".to_owned(),
                source: None,
            })?;
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }

    /// Opens a value sealed by [`SecretsKey::seal`] for the row `id`. Fails on another key,
    /// another row, or any altered byte.
    pub fn open(&self, id: &str, sealed: &[u8]) -> Result<Vec<u8>, OpenFailed> {
        let (&version, rest) = sealed.split_first().ok_or(OpenFailed)?;
        if version != SEALED_VERSION || rest.len() < NONCE_LEN + aead::MAX_TAG_LEN {
            return Err(OpenFailed);
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenFailed)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(id.as_bytes()), &mut body)
            .map_err(|_| OpenFailed)?;
        Ok(plain.to_vec())
    }
}

fn random_failed(path: &Path) -> StoreError {
    StoreError {
        kind: StoreErrorKind::Random,
        path: path.to_owned(),
        message: "the operating system's random generator failed".to_owned(),
        source: None,
    }
}

/// Returns the secrets key: `env_value` (the value of `TOKENGATE_SECRETS_KEY`) when set and not
/// blank; else `<data-dir>/secrets.key`; else, when `may_create` (the embedded store's first
/// start), 32 new random bytes written there as base64 with mode 0600.
///
/// Errors: a key that is not base64 of 32 bytes (naming where it came from, never its value),
/// a missing key where none may be created, an unreadable file.
pub fn load_or_create_secrets_key(
    data_dir: &Path,
    env_value: Option<String>,
    may_create: bool,
) -> Result<(SecretsKey, SecretsKeySource), StoreError> {
    let path = data_dir.join(SECRETS_KEY_FILE);
    let invalid = |where_: &str, why: String| StoreError {
        kind: StoreErrorKind::Corrupt,
        path: path.clone(),
        message: format!("the secrets key in {where_} {why}"),
        source: None,
    };
    if let Some(text) = env_value.filter(|t| !t.trim().is_empty()) {
        let key = SecretsKey::from_base64(&text).map_err(|why| invalid(SECRETS_KEY_ENV, why))?;
        return Ok((key, SecretsKeySource::Environment));
    }
    match fs::read_to_string(&path) {
        Ok(text) => {
            let key =
                SecretsKey::from_base64(&text).map_err(|why| invalid(&path.display().to_string(), why))?;
            Ok((key, SecretsKeySource::File(path)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && may_create => {
            ensure_data_dir(data_dir)?;
            let mut bytes = [0u8; 32];
            SystemRandom::new()
                .fill(&mut bytes)
                .map_err(|_| random_failed(&path))?;
            let mut text = base64::engine::general_purpose::STANDARD.encode(bytes);
            text.push('\n');
            write_atomically(data_dir, &path, text.as_bytes())?;
            let key = SecretsKey::from_base64(&text).map_err(|why| invalid("the new file", why))?;
            Ok((key, SecretsKeySource::Created(path)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError {
            kind: StoreErrorKind::Io,
            path: path.clone(),
            message: format!(
                "no secrets key: set {SECRETS_KEY_ENV} to the key every node sharing this database uses"
            ),
            source: None,
        }),
        Err(e) => Err(StoreError::io(&path, "cannot read the secrets key file", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "q1XbgTQqV3GS6OnRzbrUvH2e9LxEHg6G5iRH1YdKW8I=";

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_row() {
        let key = SecretsKey::from_base64(KEY).unwrap();
        let sealed = key.seal("p1", b"the secret").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"the secret"));
        assert_eq!(key.open("p1", &sealed).unwrap(), b"the secret");
        assert_eq!(key.open("p2", &sealed), Err(OpenFailed));
        let other = SecretsKey::from_base64(&"A".repeat(43)).unwrap();
        assert_eq!(other.open("p1", &sealed), Err(OpenFailed));
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(key.open("p1", &altered), Err(OpenFailed));
        assert_eq!(key.open("p1", &[]), Err(OpenFailed));
        assert_eq!(key.open("p1", &sealed[..10]), Err(OpenFailed));
    }

    #[test]
    fn keys_that_are_not_32_bytes_of_base64_are_refused() {
        assert!(SecretsKey::from_base64("not base64!").is_err());
        let short = SecretsKey::from_base64("AAAA").unwrap_err();
        assert!(short.contains("3 bytes"), "{short}");
        assert!(SecretsKey::from_base64(&format!(" {KEY}\n")).is_ok());
    }
}
