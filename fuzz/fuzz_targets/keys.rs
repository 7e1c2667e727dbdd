//! Fuzzes the verification-key readers: `RsaPublicKey::parse` (OpenSSH line, PEM SPKI, PKCS#1,
//! CERTIFICATE), `from_spki_der`, `from_pkcs1_der`, `from_certificate_der`,
//! `HmacKey::from_secret` (raw and base64) and `looks_like_private_key`. Asserts: no panic; an
//! accepted RSA key has a 2048..=8192-bit odd modulus without leading zeros and an odd exponent
//! in 3..=2^33-1, and re-encoding it as PKCS#1 DER, SPKI DER, both PEMs and an `ssh-rsa` line
//! parses back to the same key; an HMAC key is accepted iff its (decoded) secret has >= 32 bytes,
//! and sign/verify round-trips; a text holding a `-----BEGIN … PRIVATE KEY-----` line is flagged
//! as a private key, and a text without `PRIVATE KEY` (and not PuTTY) is not.
#![no_main]

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use libfuzzer_sys::fuzz_target;
use tokengate::core::keys::{looks_like_private_key, HmacKey, KeyError, RsaPublicKey};

const ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().position(|&b| b != 0).unwrap();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

fn der_uint(n: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    if n.first().is_none_or(|b| b & 0x80 != 0) {
        v.push(0);
    }
    v.extend_from_slice(n);
    der(0x02, &v)
}

fn ssh_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

fn ssh_mpint(out: &mut Vec<u8>, n: &[u8]) {
    let mut v = Vec::new();
    if n.first().is_some_and(|b| b & 0x80 != 0) {
        v.push(0);
    }
    v.extend_from_slice(n);
    ssh_string(out, &v);
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn check_rsa(key: &RsaPublicKey) {
    let n = key.modulus();
    let e = key.exponent();
    let bits = key.modulus_bits();
    assert!((2048..=8192).contains(&bits), "{bits} bits");
    assert!(n[0] != 0 && n.len() * 8 - n[0].leading_zeros() as usize == bits);
    assert!(n[n.len() - 1] & 1 == 1, "even modulus");
    assert!(!e.is_empty() && e[0] != 0 && e.len() <= 5);
    let e_value = e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    assert!((3..=(1u64 << 33) - 1).contains(&e_value) && e_value & 1 == 1);

    let pkcs1 = der(0x30, &[der_uint(n), der_uint(e)].concat());
    let algorithm = der(
        0x30,
        &[
            der(0x06, &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]),
            der(0x05, &[]),
        ]
        .concat(),
    );
    let spki = der(0x30, &[algorithm, der(0x03, &[&[0u8][..], &pkcs1].concat())].concat());
    let mut blob = Vec::new();
    ssh_string(&mut blob, b"ssh-rsa");
    ssh_mpint(&mut blob, e);
    ssh_mpint(&mut blob, n);
    let ssh_line = format!("ssh-rsa {} fuzz@example", STANDARD.encode(&blob));

    let same = |what: &str, again: Result<RsaPublicKey, KeyError>| match again {
        Ok(k) => assert!(k == *key, "{what} round trip gave another key"),
        Err(err) => panic!("{what} round trip refused: {err}"),
    };
    same("components", RsaPublicKey::from_components(n, e));
    same("PKCS#1 DER", RsaPublicKey::from_pkcs1_der(&pkcs1));
    same("SPKI DER", RsaPublicKey::from_spki_der(&spki));
    same("PKCS#1 PEM", RsaPublicKey::parse(&pem("RSA PUBLIC KEY", &pkcs1)));
    same("SPKI PEM", RsaPublicKey::parse(&pem("PUBLIC KEY", &spki)));
    same("ssh-rsa line", RsaPublicKey::parse(&ssh_line));
    // A wrong-length and a zero signature never verify (and never panic).
    assert!(!key.verify(b"a.b", b""));
    assert!(!key.verify(b"a.b", &vec![0u8; n.len()]));
}

fn check_hmac(secret: &str) {
    match HmacKey::from_secret(secret, false) {
        Ok(k) => {
            assert!(secret.len() >= 32);
            assert!(k.verify(b"x.y", &k.sign(b"x.y")));
        }
        Err(KeyError::SecretTooShort { bytes }) => assert!(bytes == secret.len() && bytes < 32),
        Err(other) => panic!("raw secret refused with {other:?}"),
    }
    let compact: Vec<u8> = secret.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let decoded = ANY_PAD.decode(&compact);
    match HmacKey::from_secret(secret, true) {
        Ok(k) => {
            assert!(decoded.expect("accepted base64 secret does not decode").len() >= 32);
            assert!(k.verify(b"x.y", &k.sign(b"x.y")));
        }
        Err(KeyError::SecretTooShort { bytes }) => {
            assert!(bytes < 32 && decoded.map(|d| d.len()) == Ok(bytes))
        }
        Err(KeyError::SecretNotBase64) => assert!(decoded.is_err()),
        Err(other) => panic!("base64 secret refused with {other:?}"),
    }
}

fn check_private_flag(text: &str) {
    let flagged = looks_like_private_key(text);
    if !text.contains("PRIVATE KEY") && !text.trim_start().starts_with("PuTTY-User-Key-File") {
        assert!(!flagged, "flagged as private without PRIVATE KEY");
    }
    for label in ["RSA PRIVATE KEY", "PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY"] {
        if text.contains(&format!("-----BEGIN {label}-----")) {
            assert!(flagged, "a {label} block was not flagged");
        }
    }
}

fn rsa(result: Result<RsaPublicKey, KeyError>) {
    match result {
        Ok(key) => check_rsa(&key),
        Err(err) => {
            let _ = err.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    rsa(RsaPublicKey::from_spki_der(data));
    rsa(RsaPublicKey::from_pkcs1_der(data));
    rsa(RsaPublicKey::from_certificate_der(data));
    if let Ok(text) = std::str::from_utf8(data) {
        rsa(RsaPublicKey::parse(text));
        check_hmac(text);
        check_private_flag(text);
    }
});
