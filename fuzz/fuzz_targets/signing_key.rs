//! Fuzzes the private-key reader of `tokengate jwt sign`: `RsaSigningKey::parse` (OpenSSH
//! `openssh-key-v1`, PEM `RSA PRIVATE KEY`, PEM `PRIVATE KEY`), `from_pkcs1_der` and
//! `from_pkcs8_der` on raw bytes. Asserts: no panic; an accepted key has a 2048..=4096-bit
//! modulus; a text accepted by `parse` is flagged by `looks_like_private_key`; the key's public
//! half is accepted by `RsaPublicKey::from_components` with the same size, and an RS256 signature
//! made with the key verifies with it (and not over other data).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::core::keys::{looks_like_private_key, KeyError, RsaPublicKey};
use tokengate::tools::signing::RsaSigningKey;

/// FINDING-2 (README.md): `regressions/signing_key/pkcs8-corrupt-dQ.pem` fails when `true`.
const SIGN_FAILURE_IS_FINDING: bool = false;

fn check(result: Result<RsaSigningKey, KeyError>) {
    let key = match result {
        Ok(key) => key,
        Err(err) => {
            let _ = err.to_string();
            return;
        }
    };
    let bits = key.modulus_bits();
    assert!((2048..=4096).contains(&bits), "{bits} bits");
    let (n, e) = key.public_key_components();
    let public = RsaPublicKey::from_components(&n, &e)
        .unwrap_or_else(|err| panic!("the public half of a signing key is refused: {err}"));
    assert_eq!(public.modulus_bits(), bits);
    let signature = match key.sign(b"header.payload") {
        Ok(signature) => signature,
        // FINDING-2 (README.md): a key whose CRT exponent dP/dQ is wrong is accepted when it is
        // loaded and fails only here; set SIGN_FAILURE_IS_FINDING to make it fail the target.
        Err(_) if !SIGN_FAILURE_IS_FINDING => return,
        Err(err) => panic!("an accepted signing key cannot sign: {err:?}"),
    };
    assert_eq!(signature.len(), n.len());
    assert!(public.verify(b"header.payload", &signature), "own signature does not verify");
    assert!(!public.verify(b"header.payloaX", &signature));
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let parsed = RsaSigningKey::parse(text);
        if parsed.is_ok() {
            assert!(looks_like_private_key(text), "accepted private key is not flagged as one");
        }
        check(parsed);
    }
    check(RsaSigningKey::from_pkcs1_der(data));
    check(RsaSigningKey::from_pkcs8_der(data));
});
