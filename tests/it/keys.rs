//! Key parsing and signature checks against the interop data: PyJWT tokens, ssh-keygen and
//! openssl keys, RFC 7515 appendix A, and deterministic garbage and mutations.

use std::path::PathBuf;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::Value;
use tokengate::core::keys::{HmacKey, KeyError, RsaPublicKey};
use tokengate::tools::signing::RsaSigningKey;

fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn interop(name: &str) -> String {
    std::fs::read_to_string(data_path(&format!("jwt-interop/{name}"))).unwrap()
}

fn json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(data_path(name)).unwrap()).unwrap()
}

/// The HS256 secret: the file's 44 characters without the trailing newline.
fn hs256_secret() -> String {
    interop("hs256.secret")
        .trim_end_matches(['\n', '\r'])
        .to_owned()
}

/// Splits a compact JWT into (signing input, decoded signature).
fn split_token(token: &str) -> (&[u8], Vec<u8>) {
    let dot = token.rfind('.').unwrap();
    // Padding is stripped: `hs256_padded` carries it (the JWT layer refuses that, not this one).
    let signature = URL_SAFE_NO_PAD
        .decode(token[dot + 1..].trim_end_matches('='))
        .unwrap();
    (&token.as_bytes()[..dot], signature)
}

/// The PEM body of `text` as DER.
fn pem_der(text: &str) -> Vec<u8> {
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

fn to_pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// One DER element at the start of `der`: (tag, contents, rest). Test helper for well-formed data.
fn tlv(der: &[u8]) -> (u8, &[u8], &[u8]) {
    let (len, skip) = match der[1] {
        l if l < 0x80 => (usize::from(l), 2),
        0x81 => (usize::from(der[2]), 3),
        0x82 => (usize::from(der[2]) << 8 | usize::from(der[3]), 4),
        _ => panic!("unexpected length form"),
    };
    (der[0], &der[skip..skip + len], &der[skip + len..])
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo`.
fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
    let (_, info, _) = tlv(pkcs8);
    let (_, _, rest) = tlv(info); // version
    let (_, _, rest) = tlv(rest); // algorithm
    let (tag, key, _) = tlv(rest);
    assert_eq!(tag, 0x04);
    key.to_vec()
}

const PUBLIC_FILES: [&str; 4] = [
    "ssh_rsa.pub",
    "rsa2048.spki.pem",
    "rsa2048.pkcs1.pem",
    "rsa2048.cert.pem",
];

#[test]
fn every_public_key_file_parses() {
    for name in PUBLIC_FILES {
        let key = RsaPublicKey::parse(&interop(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(key.modulus_bits() >= 2048, "{name}");
        assert_eq!(key.exponent(), &[1, 0, 1], "{name}");
    }
    assert_eq!(
        RsaPublicKey::parse(&interop("ssh_rsa.pub"))
            .unwrap()
            .modulus_bits(),
        3072
    );
}

#[test]
fn the_2048_bit_formats_hold_the_same_key() {
    let spki = RsaPublicKey::parse(&interop("rsa2048.spki.pem")).unwrap();
    let pkcs1 = RsaPublicKey::parse(&interop("rsa2048.pkcs1.pem")).unwrap();
    let cert = RsaPublicKey::parse(&interop("rsa2048.cert.pem")).unwrap();
    assert_eq!(spki.modulus_bits(), 2048);
    assert_eq!(spki, pkcs1);
    assert_eq!(spki, cert);
    let private = RsaSigningKey::parse(&interop("rsa2048.key")).unwrap();
    assert_eq!(private.modulus_bits(), 2048);
    let (n, e) = private.public_key_components();
    assert_eq!(
        (n.as_slice(), e.as_slice()),
        (spki.modulus(), spki.exponent())
    );
    assert_eq!(RsaPublicKey::from_components(&n, &e).unwrap(), spki);
    // The DER constructors agree with the PEM ones.
    let spki_der = pem_der(&interop("rsa2048.spki.pem"));
    assert_eq!(RsaPublicKey::from_spki_der(&spki_der).unwrap(), spki);
    let pkcs1_der = pem_der(&interop("rsa2048.pkcs1.pem"));
    assert_eq!(RsaPublicKey::from_pkcs1_der(&pkcs1_der).unwrap(), spki);
}

#[test]
fn the_ssh_key_pair_matches() {
    let public = RsaPublicKey::parse(&interop("ssh_rsa.pub")).unwrap();
    let private = RsaSigningKey::parse(&interop("ssh_rsa")).unwrap();
    assert_eq!(private.modulus_bits(), 3072);
    let (n, e) = private.public_key_components();
    assert_eq!(
        (n.as_slice(), e.as_slice()),
        (public.modulus(), public.exponent())
    );
}

#[test]
fn keys_under_2048_bits_are_refused() {
    assert_eq!(
        RsaPublicKey::parse(&interop("rsa1024.spki.pem")).unwrap_err(),
        KeyError::ModulusTooSmall { bits: 1024 }
    );
    assert_eq!(
        RsaSigningKey::parse(&interop("rsa1024.key")).unwrap_err(),
        KeyError::ModulusTooSmall { bits: 1024 }
    );
    let cases = json("jwt-interop/cases.json");
    for name in cases["rejected_keys"].as_object().unwrap().keys() {
        assert!(RsaPublicKey::parse(&interop(name)).is_err(), "{name}");
    }
}

/// A profile's key from cases.json.
enum ProfileKey {
    Hmac(HmacKey),
    Rsa(RsaPublicKey),
}

fn profile_key(profile: &Value) -> ProfileKey {
    match profile["alg"].as_str().unwrap() {
        "HS256" => {
            let secret = interop(profile["secret_file"].as_str().unwrap());
            let secret = secret.trim_end_matches(['\n', '\r']);
            assert_eq!(secret.len(), 44);
            ProfileKey::Hmac(HmacKey::from_secret(secret, false).unwrap())
        }
        "RS256" => ProfileKey::Rsa(
            RsaPublicKey::parse(&interop(profile["public_key_file"].as_str().unwrap())).unwrap(),
        ),
        other => panic!("unexpected alg {other}"),
    }
}

#[test]
fn pyjwt_signatures_verify_with_the_profile_keys() {
    let cases = json("jwt-interop/cases.json");
    let (mut ok, mut refused) = (0, 0);
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let expect = case["expect"].as_str().unwrap();
        let profile = &cases["profiles"][case["profile"].as_str().unwrap()];
        let (input, signature) = split_token(case["token"].as_str().unwrap());
        let header = std::str::from_utf8(input.split(|&b| b == b'.').next().unwrap()).unwrap();
        let header = URL_SAFE_NO_PAD
            .decode(header.trim_end_matches('='))
            .unwrap();
        let header: Value = serde_json::from_slice(&header).unwrap_or(Value::Null);
        let verified = match profile_key(profile) {
            ProfileKey::Hmac(key) => key.verify(input, &signature),
            ProfileKey::Rsa(key) => key.verify(input, &signature),
        };
        let signed_with_profile_alg = header["alg"] == profile["alg"];
        if expect == "ok" {
            assert!(verified, "{name} should verify");
            ok += 1;
        } else if matches!(
            name,
            "hs256_wrong_secret" | "rs256_wrong_key" | "rs256_tampered" | "alg_confusion"
        ) || !signed_with_profile_alg
        {
            assert!(!verified, "{name} should not verify");
            refused += 1;
        }
    }
    println!("cases.json: {ok} signatures verified, {refused} refused");
    assert!(ok >= 8 && refused >= 4);
}

#[test]
fn rfc7515_appendix_a_verifies() {
    let rfc = json("rfc7515.json");
    let a1 = &rfc["A.1"];
    let k = URL_SAFE_NO_PAD
        .decode(a1["jwk_k"].as_str().unwrap())
        .unwrap();
    assert_eq!(k.len(), 64);
    let (input, signature) = split_token(a1["token"].as_str().unwrap());
    assert!(HmacKey::from_bytes(&k).unwrap().verify(input, &signature));
    let via_base64 = HmacKey::from_secret(&STANDARD.encode(&k), true).unwrap();
    assert!(via_base64.verify(input, &signature));
    assert_eq!(via_base64.sign(input).as_slice(), signature.as_slice());

    let a2 = &rfc["A.2"];
    let n = URL_SAFE_NO_PAD
        .decode(a2["jwk_n"].as_str().unwrap())
        .unwrap();
    let e = URL_SAFE_NO_PAD
        .decode(a2["jwk_e"].as_str().unwrap())
        .unwrap();
    let key = RsaPublicKey::from_components(&n, &e).unwrap();
    assert_eq!(key.modulus_bits(), 2048);
    let (input, signature) = split_token(a2["token"].as_str().unwrap());
    assert!(key.verify(input, &signature));
    assert!(!key.verify(&input[1..], &signature));
}

/// The patched ring's `RsaParsedPublicKey` (vendor/README.md), which `RsaPublicKey::verify` uses,
/// answers as ring's own `RsaPublicKeyComponents::verify` on every RS256 signature of the interop
/// data and RFC 7515 A.2, and on each of them with a bit flipped in the signature or the input.
#[test]
fn the_parsed_rsa_key_verifies_as_ring_does() {
    let ring_verify = |key: &RsaPublicKey, input: &[u8], signature: &[u8]| {
        ring::signature::RsaPublicKeyComponents {
            n: key.modulus(),
            e: key.exponent(),
        }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            input,
            signature,
        )
        .is_ok()
    };
    let mut signed = Vec::new();
    let cases = json("jwt-interop/cases.json");
    for case in cases["cases"].as_array().unwrap() {
        let profile = &cases["profiles"][case["profile"].as_str().unwrap()];
        if let ProfileKey::Rsa(key) = profile_key(profile) {
            let (input, signature) = split_token(case["token"].as_str().unwrap());
            signed.push((key, input.to_vec(), signature));
        }
    }
    let a2 = &json("rfc7515.json")["A.2"];
    let component = |name: &str| URL_SAFE_NO_PAD.decode(a2[name].as_str().unwrap()).unwrap();
    let key = RsaPublicKey::from_components(&component("jwk_n"), &component("jwk_e")).unwrap();
    let (input, signature) = split_token(a2["token"].as_str().unwrap());
    signed.push((key, input.to_vec(), signature));

    let (mut valid, mut checked) = (0, 0);
    for (key, input, signature) in &signed {
        let verified = key.verify(input, signature);
        assert_eq!(verified, ring_verify(key, input, signature));
        valid += usize::from(verified);
        for at in [0, signature.len() / 2, signature.len().saturating_sub(1)] {
            let mut bad = signature.clone();
            if let Some(byte) = bad.get_mut(at) {
                *byte ^= 0x01;
            }
            assert!(!key.verify(input, &bad));
            assert_eq!(key.verify(input, &bad), ring_verify(key, input, &bad));
            let mut bad_input = input.clone();
            bad_input[at % input.len()] ^= 0x01;
            assert_eq!(
                key.verify(&bad_input, signature),
                ring_verify(key, &bad_input, signature)
            );
            checked += 3;
        }
    }
    assert!(valid >= 4, "only {valid} RS256 signatures verified");
    println!(
        "{} RS256 signatures, {valid} valid, {checked} mutations agree",
        signed.len()
    );
}

#[test]
fn hs256_interop_secret_is_the_44_characters() {
    let secret = hs256_secret();
    let as_pasted = HmacKey::from_secret(&secret, false).unwrap();
    let decoded = HmacKey::from_secret(&secret, true).unwrap();
    let cases = json("jwt-interop/cases.json");
    let token = cases["cases"][0]["token"].as_str().unwrap();
    let (input, signature) = split_token(token);
    assert!(as_pasted.verify(input, &signature));
    assert!(!decoded.verify(input, &signature));
}

fn sign_then_verify(private: &RsaSigningKey, public: &RsaPublicKey) {
    let input = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0";
    let signature = private.sign(input).unwrap();
    assert_eq!(signature.len() * 8, public.modulus_bits());
    assert!(public.verify(input, &signature));
    assert!(!public.verify(b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN1In0", &signature));
    let mut flipped = signature.clone();
    flipped[10] ^= 1;
    assert!(!public.verify(input, &flipped));
    assert!(!public.verify(input, &signature[1..]));
    assert!(!public.verify(input, &[]));
}

#[test]
fn openssh_key_signs_and_ssh_pub_line_verifies() {
    let private = RsaSigningKey::parse(&interop("ssh_rsa")).unwrap();
    let public = RsaPublicKey::parse(&interop("ssh_rsa.pub")).unwrap();
    sign_then_verify(&private, &public);
}

#[test]
fn pem_keys_sign_and_verify() {
    let public = RsaPublicKey::parse(&interop("rsa2048.spki.pem")).unwrap();
    let pkcs8_text = interop("rsa2048.key");
    assert!(pkcs8_text.starts_with("-----BEGIN PRIVATE KEY-----"));
    sign_then_verify(&RsaSigningKey::parse(&pkcs8_text).unwrap(), &public);
    // The same key as PEM `RSA PRIVATE KEY` (PKCS#1), taken out of the PKCS#8 wrapper.
    let pkcs1 = pkcs1_from_pkcs8(&pem_der(&pkcs8_text));
    let pkcs1_text = to_pem("RSA PRIVATE KEY", &pkcs1);
    sign_then_verify(&RsaSigningKey::parse(&pkcs1_text).unwrap(), &public);
    for cert_or_pkcs1 in ["rsa2048.cert.pem", "rsa2048.pkcs1.pem"] {
        let other = RsaPublicKey::parse(&interop(cert_or_pkcs1)).unwrap();
        sign_then_verify(&RsaSigningKey::from_pkcs1_der(&pkcs1).unwrap(), &other);
    }
}

#[test]
fn private_key_files_are_not_public_keys_and_vice_versa() {
    for name in ["ssh_rsa", "rsa2048.key"] {
        assert_eq!(
            RsaPublicKey::parse(&interop(name)).unwrap_err(),
            KeyError::UnrecognizedFormat,
            "{name}"
        );
    }
    for name in PUBLIC_FILES {
        assert!(RsaSigningKey::parse(&interop(name)).is_err(), "{name}");
    }
}

#[test]
fn garbage_is_refused() {
    let spki = interop("rsa2048.spki.pem");
    let ssh = interop("ssh_rsa.pub");
    let ed25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGXnBmTGnxQvqFxOKu7mT9nZHgi3t7dO6bK5Ewm1oW4q user@host";
    assert_eq!(RsaPublicKey::parse(ed25519).unwrap_err(), KeyError::NotRsa);
    assert_eq!(
        RsaPublicKey::parse("").unwrap_err(),
        KeyError::UnrecognizedFormat
    );
    assert_eq!(
        RsaPublicKey::parse("  \n ").unwrap_err(),
        KeyError::UnrecognizedFormat
    );
    assert_eq!(
        RsaSigningKey::parse("").unwrap_err(),
        KeyError::UnrecognizedFormat
    );
    assert_eq!(
        RsaPublicKey::parse("hello world").unwrap_err(),
        KeyError::UnrecognizedFormat
    );
    assert!(matches!(
        RsaPublicKey::parse("ssh-rsa"),
        Err(KeyError::Malformed(_))
    ));
    assert!(matches!(
        RsaPublicKey::parse("ssh-rsa !!!notbase64 comment"),
        Err(KeyError::Malformed(_))
    ));
    // An ssh-rsa line whose data says ed25519.
    let inner = ed25519.split(' ').nth(1).unwrap();
    assert_eq!(
        RsaPublicKey::parse(&format!("ssh-rsa {inner}")).unwrap_err(),
        KeyError::NotRsa
    );
    // The ssh line without its comment, and with trailing bytes in its data.
    let data = ssh.split(' ').nth(1).unwrap();
    assert!(RsaPublicKey::parse(&format!("ssh-rsa {data}")).is_ok());
    let mut blob = STANDARD.decode(data).unwrap();
    blob.push(0);
    assert!(matches!(
        RsaPublicKey::parse(&format!("ssh-rsa {}", STANDARD.encode(&blob))),
        Err(KeyError::Malformed(_))
    ));
    // A PEM with bad base64, and one with a character changed to a non-base64 one.
    let bad = spki.replacen("MII", "M*I", 1);
    assert!(matches!(
        RsaPublicKey::parse(&bad),
        Err(KeyError::Malformed(_))
    ));
    assert!(
        RsaPublicKey::parse("-----BEGIN PUBLIC KEY-----\n@@@@\n-----END PUBLIC KEY-----").is_err()
    );
    // Unknown labels.
    assert_eq!(
        RsaPublicKey::parse("-----BEGIN FOO-----\nAAAA\n-----END FOO-----").unwrap_err(),
        KeyError::UnrecognizedFormat
    );
    // Truncated PEMs: at every line boundary and a few characters in.
    for text in [spki.as_str(), interop("rsa2048.cert.pem").as_str()] {
        for cut in (0..text.len()).step_by(7) {
            assert!(RsaPublicKey::parse(&text[..cut]).is_err(), "cut at {cut}");
        }
    }
    let private = interop("ssh_rsa");
    for cut in (0..private.len()).step_by(13) {
        assert!(
            RsaSigningKey::parse(&private[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    // Random bytes, as text and as DER.
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for len in 0..300 {
        let bytes: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        let text = String::from_utf8_lossy(&bytes);
        assert!(RsaPublicKey::parse(&text).is_err());
        assert!(RsaSigningKey::parse(&text).is_err());
        assert!(RsaPublicKey::from_spki_der(&bytes).is_err());
        assert!(RsaPublicKey::from_pkcs1_der(&bytes).is_err());
        assert!(RsaPublicKey::from_certificate_der(&bytes).is_err());
        assert!(RsaSigningKey::from_pkcs1_der(&bytes).is_err());
        assert!(RsaSigningKey::from_pkcs8_der(&bytes).is_err());
        let wrapped = to_pem("PUBLIC KEY", &bytes);
        assert!(RsaPublicKey::parse(&wrapped).is_err());
    }
}

/// A tiny deterministic PRNG for the garbage and mutation tests.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Variants of `bytes`: each position flipped, set to 0x00/0xFF/0x80, deleted, and the whole
/// cut there; `stride` skips positions to bound the cost of slow parsers.
fn mutations(bytes: &[u8], stride: usize) -> impl Iterator<Item = Vec<u8>> + '_ {
    (0..bytes.len()).step_by(stride).flat_map(move |i| {
        let mut out = Vec::new();
        for value in [bytes[i] ^ 0x01, bytes[i] ^ 0x80, 0x00, 0xFF, 0x80] {
            let mut m = bytes.to_vec();
            m[i] = value;
            out.push(m);
        }
        let mut deleted = bytes.to_vec();
        deleted.remove(i);
        out.push(deleted);
        out.push(bytes[..i].to_vec());
        out
    })
}

#[test]
fn mutated_keys_never_panic() {
    let input = b"header.payload";
    let mut counts = (0usize, 0usize); // (parsed, refused)
    let mut tally = |ok: bool| if ok { counts.0 += 1 } else { counts.1 += 1 };
    let dummy_signature = [0x5Au8; 256];

    // Public keys: mutate the DER and the OpenSSH blob, then go through every entry point.
    for (name, label) in [
        ("rsa2048.spki.pem", "PUBLIC KEY"),
        ("rsa2048.pkcs1.pem", "RSA PUBLIC KEY"),
        ("rsa2048.cert.pem", "CERTIFICATE"),
    ] {
        let der = pem_der(&interop(name));
        for m in mutations(&der, 1) {
            for result in [
                RsaPublicKey::from_spki_der(&m),
                RsaPublicKey::from_pkcs1_der(&m),
                RsaPublicKey::from_certificate_der(&m),
                RsaPublicKey::parse(&to_pem(label, &m)),
            ] {
                if let Ok(key) = &result {
                    // An accepted key must be usable: verify answers without failing structurally.
                    assert!(!key.verify(input, &dummy_signature));
                }
                tally(result.is_ok());
            }
        }
    }
    let ssh = interop("ssh_rsa.pub");
    let blob = STANDARD.decode(ssh.split(' ').nth(1).unwrap()).unwrap();
    for m in mutations(&blob, 1) {
        let result = RsaPublicKey::parse(&format!("ssh-rsa {} c", STANDARD.encode(&m)));
        if let Ok(key) = &result {
            assert!(!key.verify(input, &dummy_signature));
        }
        tally(result.is_ok());
    }
    // Mutated text (PEM and ssh line) as pasted.
    for name in PUBLIC_FILES {
        let text = interop(name);
        for m in mutations(text.as_bytes(), 3) {
            tally(RsaPublicKey::parse(&String::from_utf8_lossy(&m)).is_ok());
        }
    }

    // Private keys: ring's key checks are slower, so every 5th position.
    let pkcs8 = pem_der(&interop("rsa2048.key"));
    let pkcs1 = pkcs1_from_pkcs8(&pkcs8);
    for m in mutations(&pkcs8, 5) {
        tally(RsaSigningKey::from_pkcs8_der(&m).is_ok());
    }
    for m in mutations(&pkcs1, 5) {
        tally(RsaSigningKey::from_pkcs1_der(&m).is_ok());
    }
    let openssh = pem_der(&interop("ssh_rsa"));
    for m in mutations(&openssh, 5) {
        let result = RsaSigningKey::parse(&to_pem("OPENSSH PRIVATE KEY", &m));
        if let Ok(key) = &result {
            // A mutated but accepted key still signs or says it cannot; it never panics.
            let _ = key.sign(input);
        }
        tally(result.is_ok());
    }
    println!(
        "mutations: {} accepted, {} refused, none panicked",
        counts.0, counts.1
    );
    assert!(counts.1 > counts.0);
}

#[test]
fn encrypted_private_keys_get_a_clear_error() {
    // openssh-key-v1 with cipher aes256-ctr: only the header matters for the refusal.
    let mut blob = b"openssh-key-v1\0".to_vec();
    for field in [
        &b"aes256-ctr"[..],
        b"bcrypt",
        b"\0\0\0\x10saltsaltsaltsalt\0\0\0\x10",
    ] {
        blob.extend((field.len() as u32).to_be_bytes());
        blob.extend(field);
    }
    let text = to_pem("OPENSSH PRIVATE KEY", &blob);
    assert_eq!(
        RsaSigningKey::parse(&text).unwrap_err(),
        KeyError::Encrypted
    );
    let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    assert_eq!(
        RsaSigningKey::parse(legacy).unwrap_err(),
        KeyError::Encrypted
    );
    assert!(KeyError::Encrypted.to_string().contains("passphrase"));
}

/// Runs `program args`, or returns None when the program is not installed.
fn run(program: &str, args: &[&str]) -> Option<bool> {
    match std::process::Command::new(program).args(args).output() {
        Ok(out) => Some(out.status.success()),
        Err(_) => None,
    }
}

#[test]
fn fresh_ssh_keygen_keys_round_trip() {
    let dir = std::env::temp_dir().join(format!(
        "tokengate-keys-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let keygen = |name: &str, extra: &[&str]| {
        let file = path(name);
        let mut args = vec!["-q", "-C", "test", "-f", file.as_str()];
        args.extend(extra);
        run("ssh-keygen", &args)
    };
    let Some(true) = keygen("rsa", &["-t", "rsa", "-b", "2048", "-N", ""]) else {
        println!("ssh-keygen is not available; skipping the fresh key test");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    let read = |name: &str| std::fs::read_to_string(path(name)).unwrap();
    let private = RsaSigningKey::parse(&read("rsa")).unwrap();
    let public = RsaPublicKey::parse(&read("rsa.pub")).unwrap();
    assert_eq!(public.modulus_bits(), 2048);
    sign_then_verify(&private, &public);

    // A passphrase-protected key, and keys of other types.
    assert_eq!(
        keygen("enc", &["-t", "rsa", "-b", "2048", "-N", "secret words"]),
        Some(true)
    );
    assert_eq!(
        RsaSigningKey::parse(&read("enc")).unwrap_err(),
        KeyError::Encrypted
    );
    assert_eq!(keygen("ed", &["-t", "ed25519", "-N", ""]), Some(true));
    assert_eq!(
        RsaSigningKey::parse(&read("ed")).unwrap_err(),
        KeyError::NotRsa
    );
    assert_eq!(
        RsaPublicKey::parse(&read("ed.pub")).unwrap_err(),
        KeyError::NotRsa
    );
    assert_eq!(
        keygen("small", &["-t", "rsa", "-b", "1024", "-N", ""]),
        Some(true)
    );
    assert_eq!(
        RsaSigningKey::parse(&read("small")).unwrap_err(),
        KeyError::ModulusTooSmall { bits: 1024 }
    );
    assert_eq!(
        RsaPublicKey::parse(&read("small.pub")).unwrap_err(),
        KeyError::ModulusTooSmall { bits: 1024 }
    );
    // ssh-keygen can also write the PEM forms of the public key.
    for (format, label) in [("PKCS8", "PUBLIC KEY"), ("PEM", "RSA PUBLIC KEY")] {
        let out = std::process::Command::new("ssh-keygen")
            .args(["-e", "-m", format, "-f", &path("rsa.pub")])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains(label), "{format}");
        assert_eq!(RsaPublicKey::parse(&text).unwrap(), public);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
