//! Criterion benches of the verification core: ns/op for each step of the hot path.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue, Method};
use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use tokengate::core::credential;
use tokengate::core::gate::{ConnectionMemo, Gate, Request};
use tokengate::core::jwt::{self, MAX_SIGNATURE_LEN};
use tokengate::core::keys::{HmacKey, RsaPublicKey};
use tokengate::core::registry::Snapshot;
use tokengate::tools::demo::{bench_fixture, BENCH_RSA_PRIVATE_PEM, BENCH_RSA_PUBLIC_PEM};
use tokengate::tools::jwt_sign::{client_claims, SigningKey};
use tokengate::tools::signing::RsaSigningKey;

const NOW_S: i64 = 1_795_910_400;

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
    headers.insert("user-agent", HeaderValue::from_static("wrk"));
    headers
}

fn benches(c: &mut Criterion) {
    let fixture = bench_fixture().unwrap();
    let snapshot = Snapshot::build(&fixture.state).unwrap();
    let hs_key = HmacKey::from_secret(&fixture.hs256_secret, false).unwrap();
    let rs_key = RsaSigningKey::parse(BENCH_RSA_PRIVATE_PEM).unwrap();
    let hs_jwt = SigningKey::Hs256(hs_key.clone())
        .sign(&client_claims(
            &fixture.hs256_token,
            Some("Bench"),
            NOW_S,
            Some(3600),
        ))
        .unwrap();
    let rs_jwt = SigningKey::Rs256(rs_key)
        .sign(&client_claims(
            &fixture.rs256_token,
            Some("Bench"),
            NOW_S,
            Some(3600),
        ))
        .unwrap();
    let unknown_jwt = SigningKey::Hs256(hs_key.clone())
        .sign(&client_claims(&"0".repeat(64), None, NOW_S, Some(3600)))
        .unwrap();
    let now_ms = NOW_S as u64 * 1000;
    let peer: IpAddr = "127.0.0.1".parse().unwrap();

    let hs_headers = bearer(&hs_jwt);
    c.bench_function("credential_extract_bearer", |b| {
        b.iter(|| credential::extract(black_box(&hs_headers)).is_ok())
    });

    c.bench_function("jwt_parse_hs256", |b| {
        b.iter(|| jwt::parse(black_box(hs_jwt.as_bytes())).is_ok())
    });

    let parsed = jwt::parse(hs_jwt.as_bytes()).unwrap();
    let mut sig_buf = [0u8; MAX_SIGNATURE_LEN];
    let hs_sig = parsed.signature(&mut sig_buf).unwrap().to_vec();
    c.bench_function("hs256_verify", |b| {
        b.iter(|| hs_key.verify(black_box(parsed.signing_input), black_box(&hs_sig)))
    });

    let parsed_rs = jwt::parse(rs_jwt.as_bytes()).unwrap();
    let rs_sig = parsed_rs.signature(&mut sig_buf).unwrap().to_vec();
    let rs_public = RsaPublicKey::parse(BENCH_RSA_PUBLIC_PEM).unwrap();
    c.bench_function("rs256_verify", |b| {
        b.iter(|| rs_public.verify(black_box(parsed_rs.signing_input), black_box(&rs_sig)))
    });

    // ring's own verify over the same key, which rebuilds the key on every call: what
    // `rs256_verify` (the key parsed once, vendor/README.md) saves. 2026-12-03: 43.8 µs against
    // 28.9 µs on a slow morning of the 2-core VM.
    let pkcs1 = pkcs1_der(rs_public.modulus(), rs_public.exponent());
    let bare = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pkcs1);
    c.bench_function("rs256_ring_bare_verify", |b| {
        b.iter(|| {
            bare.verify(black_box(parsed_rs.signing_input), black_box(&rs_sig))
                .is_ok()
        })
    });

    let decide = |gate: &Gate, headers: &HeaderMap| {
        let request = Request {
            method: &Method::GET,
            path: "/bench/hello",
            headers,
            peer,
            now_ms,
        };
        gate.decide(&snapshot, &request).result.is_ok()
    };

    let cached = Gate::new(10_000);
    assert!(decide(&cached, &hs_headers));
    c.bench_function("decision_cache_hit_hs256", |b| {
        b.iter(|| decide(&cached, black_box(&hs_headers)))
    });

    let mut memo = ConnectionMemo::default();
    let mut on_connection = |headers: &HeaderMap| {
        let request = Request {
            method: &Method::GET,
            path: "/bench/hello",
            headers,
            peer,
            now_ms,
        };
        cached
            .decide_on_connection(&snapshot, &request, Some(&mut memo))
            .result
            .is_ok()
    };
    assert!(on_connection(&hs_headers));
    c.bench_function("decision_connection_memo_hs256", |b| {
        b.iter(|| on_connection(black_box(&hs_headers)))
    });

    let mut token_headers = HeaderMap::new();
    token_headers.insert(
        "api-token",
        HeaderValue::from_str(&fixture.api_token).unwrap(),
    );
    c.bench_function("decision_api_token", |b| {
        b.iter(|| decide(&cached, black_box(&token_headers)))
    });

    let uncached = Gate::new(0);
    assert!(decide(&uncached, &hs_headers));
    c.bench_function("decision_miss_hs256", |b| {
        b.iter(|| decide(&uncached, black_box(&hs_headers)))
    });
    let rs_headers = bearer(&rs_jwt);
    assert!(decide(&uncached, &rs_headers));
    c.bench_function("decision_miss_rs256", |b| {
        b.iter(|| decide(&uncached, black_box(&rs_headers)))
    });

    let unknown_headers = bearer(&unknown_jwt);
    assert!(!decide(&cached, &unknown_headers));
    c.bench_function("decision_unknown_token", |b| {
        b.iter(|| decide(&cached, black_box(&unknown_headers)))
    });
    let garbage = bearer("not-a-jwt");
    c.bench_function("decision_garbage_token", |b| {
        b.iter(|| decide(&cached, black_box(&garbage)))
    });
}

/// DER of a PKCS#1 RSAPublicKey from its big-endian modulus and exponent.
fn pkcs1_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn integer(bytes: &[u8]) -> Vec<u8> {
        let mut content = Vec::new();
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            content.push(0);
        }
        content.extend_from_slice(bytes);
        tlv(0x02, &content)
    }
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 128 {
            out.push(len as u8);
        } else if len < 256 {
            out.extend_from_slice(&[0x81, len as u8]);
        } else {
            out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
        }
        out.extend_from_slice(content);
        out
    }
    let mut body = integer(n);
    body.extend(integer(e));
    tlv(0x30, &body)
}

criterion_group! {
    name = core;
    config = Criterion::default().warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = benches
}
criterion_main!(core);
