//! Wycheproof vectors through tokengate's own key constructors and `verify`:
//! RSASSA-PKCS1-v1_5 with SHA-256 (2048 bits, plus the 3072/4096/8192-bit sets) and HMAC-SHA256.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tokengate::core::keys::{HmacKey, KeyError, RsaPublicKey};
use wycheproof::{mac, rsa_pkcs1_verify, TestResult};

#[derive(Default, Debug)]
struct RsaCounts {
    keys: usize,
    valid: usize,
    invalid: usize,
    acceptable_accepted: usize,
    acceptable_refused: usize,
}

fn run_rsa_set(name: rsa_pkcs1_verify::TestName) -> RsaCounts {
    let set = rsa_pkcs1_verify::TestSet::load(name).unwrap();
    let mut counts = RsaCounts::default();
    for group in &set.test_groups {
        // Every public form of the group's key goes through our constructors and must agree.
        let key = RsaPublicKey::from_spki_der(&group.der)
            .unwrap_or_else(|e| panic!("{name:?} key (SPKI DER): {e}"));
        assert_eq!(RsaPublicKey::parse(&group.pem).unwrap(), key);
        assert_eq!(RsaPublicKey::from_pkcs1_der(&group.asn_key).unwrap(), key);
        assert_eq!(
            RsaPublicKey::from_components(&group.key.n, &group.key.e).unwrap(),
            key
        );
        assert_eq!(key.modulus_bits(), group.key_size);
        counts.keys += 1;
        for test in &group.tests {
            let verified = key.verify(&test.msg, &test.sig);
            match test.result {
                TestResult::Valid => {
                    assert!(
                        verified,
                        "{name:?} tc {} ({}) must verify",
                        test.tc_id, test.comment
                    );
                    counts.valid += 1;
                }
                TestResult::Invalid => {
                    assert!(
                        !verified,
                        "{name:?} tc {} ({}) must fail",
                        test.tc_id, test.comment
                    );
                    counts.invalid += 1;
                }
                TestResult::Acceptable if verified => counts.acceptable_accepted += 1,
                TestResult::Acceptable => counts.acceptable_refused += 1,
            }
        }
    }
    let run =
        counts.valid + counts.invalid + counts.acceptable_accepted + counts.acceptable_refused;
    assert_eq!(run, set.number_of_tests);
    println!("wycheproof {name:?}: {run} cases run: {counts:?}");
    counts
}

#[test]
fn rsa_pkcs1_sha256_2048() {
    let counts = run_rsa_set(rsa_pkcs1_verify::TestName::Rsa2048Sha256);
    assert!(counts.valid > 0 && counts.invalid > 100);
}

#[test]
fn rsa_pkcs1_sha256_larger_keys() {
    for name in [
        rsa_pkcs1_verify::TestName::Rsa3072Sha256,
        rsa_pkcs1_verify::TestName::Rsa4096Sha256,
        rsa_pkcs1_verify::TestName::Rsa8192Sha256,
    ] {
        let counts = run_rsa_set(name);
        assert!(counts.valid > 0 && counts.invalid > 0);
    }
}

#[test]
fn rsa_signatures_with_another_hash_never_verify() {
    // Valid RS384/RS512 signatures must not pass as RS256 with the same key.
    let mut refused = 0;
    for name in [
        rsa_pkcs1_verify::TestName::Rsa2048Sha384,
        rsa_pkcs1_verify::TestName::Rsa2048Sha512,
    ] {
        let set = rsa_pkcs1_verify::TestSet::load(name).unwrap();
        for group in &set.test_groups {
            let key = RsaPublicKey::from_spki_der(&group.der).unwrap();
            // Only the genuine RS384/RS512 signatures: some invalid cases are real RS256 ones.
            for test in group.tests.iter().filter(|t| t.result == TestResult::Valid) {
                assert!(
                    !key.verify(&test.msg, &test.sig),
                    "{name:?} tc {}",
                    test.tc_id
                );
                refused += 1;
            }
        }
    }
    println!("wycheproof RS384/RS512 valid signatures refused as RS256: {refused}");
    assert!(refused > 0);
}

#[test]
fn hmac_sha256() {
    let set = mac::TestSet::load(mac::TestName::HmacSha256).unwrap();
    let (mut valid, mut invalid, mut short_key, mut truncated_tag) = (0, 0, 0, 0);
    for group in &set.test_groups {
        for test in &group.tests {
            let key = HmacKey::from_bytes(&test.key);
            let via_base64 = HmacKey::from_secret(&STANDARD.encode(&*test.key), true);
            if test.key.len() < 32 {
                // Keys under 32 bytes are refused, whatever the vector says about the tag.
                let too_short = KeyError::SecretTooShort {
                    bytes: test.key.len(),
                };
                assert_eq!(key.unwrap_err(), too_short);
                assert_eq!(via_base64.unwrap_err(), too_short);
                short_key += 1;
                continue;
            }
            let (key, via_base64) = (key.unwrap(), via_base64.unwrap());
            let verified = key.verify(&test.msg, &test.tag);
            assert_eq!(verified, via_base64.verify(&test.msg, &test.tag));
            if group.tag_size != 256 {
                // HS256 carries the whole 32-byte tag; a truncated one never verifies.
                assert!(!verified, "tc {} truncated tag verified", test.tc_id);
                truncated_tag += 1;
                continue;
            }
            let must_verify = test.result == TestResult::Valid;
            assert_eq!(
                verified, must_verify,
                "tc {} ({})",
                test.tc_id, test.comment
            );
            if must_verify {
                assert_eq!(key.sign(&test.msg).as_slice(), test.tag.as_slice());
                valid += 1;
            } else {
                invalid += 1;
            }
        }
    }
    let run = valid + invalid + short_key + truncated_tag;
    assert_eq!(run, set.number_of_tests);
    println!(
        "wycheproof HmacSha256: {run} cases run: {valid} valid verified, {invalid} invalid refused, \
         {short_key} with keys under 32 bytes refused at construction, \
         {truncated_tag} truncated tags refused"
    );
    assert!(valid > 0 && invalid > 0 && short_key > 0);
}
