//! The verification core end to end, without sockets: interop tokens (PyJWT, ssh-keygen, openssl),
//! RFC 7515 vectors, and cache invalidation on refresh/disable — all with an injected clock.

use std::net::IpAddr;

use crate::support::fixtures::{interop_auth, jwt_config, read_data, state_with, stored};
use base64::Engine;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::Value;
use tokengate::core::gate::{AuthKind, CacheUse, ConnectionMemo, Gate, Request};
use tokengate::core::jwt::{self, BASE64URL, MAX_SIGNATURE_LEN};
use tokengate::core::keys::{HmacKey, RsaPublicKey};
use tokengate::core::model::*;
use tokengate::core::registry::Snapshot;
use tokengate::core::reject::Reject;

/// 2026-11-29T00:00:00Z.
pub(crate) const NOW_MS: u64 = 1_795_910_400_000;

fn peer() -> IpAddr {
    "127.0.0.1".parse().unwrap()
}

pub(crate) fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers
}

pub(crate) fn decide(
    gate: &Gate,
    snapshot: &Snapshot,
    headers: &HeaderMap,
    now_ms: u64,
) -> (Result<(), Reject>, CacheUse) {
    let request = Request {
        method: &Method::GET,
        path: "/api/ping",
        headers,
        peer: peer(),
        now_ms,
    };
    let verdict = gate.decide(snapshot, &request);
    (verdict.result.map(|_| ()), verdict.cache)
}

#[test]
fn every_interop_case_gives_its_expected_outcome() {
    let cases: Value = serde_json::from_str(&read_data("jwt-interop/cases.json")).unwrap();
    let sub = cases["sub"].as_str().unwrap();
    let mut checked = 0;
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let state = state_with(sub, interop_auth(&cases, case["profile"].as_str().unwrap()));
        let snapshot = Snapshot::build(&state).unwrap();
        for capacity in [0, 100] {
            let gate = Gate::new(capacity);
            let headers = bearer(case["token"].as_str().unwrap());
            // Twice: the second call may be answered by the cache, and must agree.
            for _ in 0..2 {
                let (result, _) = decide(&gate, &snapshot, &headers, NOW_MS);
                let got = match result {
                    Ok(()) => "ok",
                    Err(reject) => reject.code(),
                };
                assert_eq!(
                    got,
                    case["expect"].as_str().unwrap(),
                    "case {name} (cache capacity {capacity})"
                );
            }
        }
        checked += 1;
    }
    assert_eq!(checked, cases["cases"].as_array().unwrap().len());
    assert!(checked >= 20);
}

#[test]
fn the_1024_bit_key_is_refused_when_the_profile_is_built() {
    let mut auth = jwt_config(JwtAlg::RS256);
    auth.public_key = Some(read_data("jwt-interop/rsa1024.spki.pem"));
    let error = Snapshot::build(&state_with(&"a".repeat(64), AuthConfig::Jwt(auth)))
        .err()
        .unwrap();
    assert_eq!(error.field, "auth.public_key");
}

#[test]
fn short_hs256_secrets_are_refused() {
    let mut auth = jwt_config(JwtAlg::HS256);
    auth.secret = Some("x".repeat(31));
    let error = Snapshot::build(&state_with(&"a".repeat(64), AuthConfig::Jwt(auth)))
        .err()
        .unwrap();
    assert_eq!(error.field, "auth.secret");
}

fn rfc_jwt_checks(token: &str, verify: impl Fn(&[u8], &[u8]) -> bool, alg: JwtAlg) {
    let parsed = jwt::parse(token.as_bytes()).unwrap();
    assert_eq!(parsed.alg, alg);
    assert_eq!(parsed.claims.exp, Some(1_300_819_380));
    let mut buf = [0u8; MAX_SIGNATURE_LEN];
    assert!(verify(
        parsed.signing_input,
        parsed.signature(&mut buf).unwrap()
    ));
    let rules = jwt::ClaimRules {
        leeway_s: 0,
        ..Default::default()
    };
    assert_eq!(
        jwt::check_claims(&parsed.claims, &rules, 1_300_819_379),
        Ok(())
    );
    assert_eq!(
        jwt::check_claims(&parsed.claims, &rules, 1_300_819_380),
        Err(Reject::TokenExpired)
    );
}

#[test]
fn rfc7515_a1_hs256_and_a2_rs256_verify_and_7519_unsecured_is_rejected() {
    let rfc: Value = serde_json::from_str(&read_data("rfc7515.json")).unwrap();
    let b64 = |field: &Value| BASE64URL.decode(field.as_str().unwrap()).unwrap();

    let a1 = &rfc["A.1"];
    let standard_k = base64::engine::general_purpose::STANDARD.encode(b64(&a1["jwk_k"]));
    let hmac = HmacKey::from_secret(&standard_k, true).unwrap();
    rfc_jwt_checks(
        a1["token"].as_str().unwrap(),
        |m, s| hmac.verify(m, s),
        JwtAlg::HS256,
    );

    let a2 = &rfc["A.2"];
    let rsa = RsaPublicKey::from_components(&b64(&a2["jwk_n"]), &b64(&a2["jwk_e"])).unwrap();
    rfc_jwt_checks(
        a2["token"].as_str().unwrap(),
        |m, s| rsa.verify(m, s),
        JwtAlg::RS256,
    );

    let unsecured = rfc["6.1_unsecured"]["token"].as_str().unwrap();
    assert_eq!(
        jwt::parse(unsecured.as_bytes()).unwrap_err(),
        Reject::InvalidToken
    );
}

pub(crate) const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789ab";

pub(crate) fn hs256(claims: &str) -> String {
    let key = HmacKey::from_secret(SECRET, false).unwrap();
    let input = format!(
        "{}.{}",
        BASE64URL.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        BASE64URL.encode(claims)
    );
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", BASE64URL.encode(signature))
}

pub(crate) fn hs256_state(token: &str) -> State {
    let mut auth = jwt_config(JwtAlg::HS256);
    auth.secret = Some(SECRET.into());
    state_with(token, AuthConfig::Jwt(auth))
}

#[test]
fn cache_hits_repeat_tokens_and_refresh_or_disable_fails_them_at_once() {
    let auth_token = "f".repeat(64);
    let jwt = hs256(&format!(r#"{{"sub":"{auth_token}","name":"Ann"}}"#));
    let mut state = hs256_state(&auth_token);
    let snapshot = Snapshot::build(&state).unwrap();
    let gate = Gate::new(1000);
    let headers = bearer(&jwt);
    assert_eq!(
        decide(&gate, &snapshot, &headers, NOW_MS),
        (Ok(()), CacheUse::Miss)
    );
    assert_eq!(
        decide(&gate, &snapshot, &headers, NOW_MS),
        (Ok(()), CacheUse::Hit)
    );

    let request = Request {
        method: &Method::GET,
        path: "/api/ping",
        headers: &headers,
        peer: peer(),
        now_ms: NOW_MS,
    };
    let verdict = gate.decide(&snapshot, &request);
    let admitted = verdict.result.ok().unwrap();
    assert_eq!(admitted.identity.caller_name(), Some("Ann"));
    assert_eq!(admitted.identity.auth, AuthKind::Jwt);
    assert_eq!(&*admitted.endpoint.name, "ping");

    // Disable: the cached token fails on the very next check.
    state.profiles[0].active = false;
    let disabled = rebuild(&state, &snapshot).unwrap();
    assert_eq!(
        decide(&gate, &disabled, &headers, NOW_MS).0,
        Err(Reject::InvalidToken)
    );
    // Client disabled: same.
    state.profiles[0].active = true;
    state.clients[0].active = false;
    let client_off = rebuild(&state, &snapshot).unwrap();
    assert_eq!(
        decide(&gate, &client_off, &headers, NOW_MS).0,
        Err(Reject::InvalidToken)
    );
    state.clients[0].active = true;
    assert_eq!(
        decide(&gate, &Snapshot::build(&state).unwrap(), &headers, NOW_MS),
        (Ok(()), CacheUse::Hit)
    );

    // Refresh: a new token and generation; the old JWT names a token that no longer exists.
    state.profiles[0].token = stored(&"e".repeat(64));
    state.profiles[0].generation += 1;
    let refreshed = rebuild(&state, &snapshot).unwrap();
    assert_eq!(
        decide(&gate, &refreshed, &headers, NOW_MS).0,
        Err(Reject::InvalidToken)
    );
}

#[test]
fn grace_keeps_the_previous_token_until_its_deadline_even_when_cached() {
    let old = "a".repeat(64);
    let jwt = hs256(&format!(r#"{{"sub":"{old}"}}"#));
    let mut state = hs256_state(&old);
    let gate = Gate::new(1000);
    let headers = bearer(&jwt);
    assert_eq!(
        decide(&gate, &Snapshot::build(&state).unwrap(), &headers, NOW_MS).0,
        Ok(())
    );

    state.profiles[0].previous_token = Some(GraceToken {
        sha256: state.profiles[0].token.sha256.clone(),
        valid_until_ms: NOW_MS + 10_000,
    });
    state.profiles[0].token = stored(&"b".repeat(64));
    state.profiles[0].generation += 1;
    let snapshot = Snapshot::build(&state).unwrap();
    assert_eq!(decide(&gate, &snapshot, &headers, NOW_MS + 1).0, Ok(()));
    assert_eq!(
        decide(&gate, &snapshot, &headers, NOW_MS + 2),
        (Ok(()), CacheUse::Hit)
    );
    assert_eq!(
        decide(&gate, &snapshot, &headers, NOW_MS + 10_000).0,
        Err(Reject::InvalidToken)
    );

    // Raw auth tokens follow the same deadline.
    let mut token_state = state_with(&"b".repeat(64), AuthConfig::Token);
    token_state.profiles[0].previous_token = Some(GraceToken {
        sha256: stored(&old).sha256,
        valid_until_ms: NOW_MS + 10_000,
    });
    let snapshot = Snapshot::build(&token_state).unwrap();
    let mut api_token = HeaderMap::new();
    api_token.insert("api-token", HeaderValue::from_str(&old).unwrap());
    assert_eq!(decide(&gate, &snapshot, &api_token, NOW_MS).0, Ok(()));
    assert_eq!(
        decide(&gate, &snapshot, &api_token, NOW_MS + 10_000).0,
        Err(Reject::InvalidToken)
    );
}

#[test]
fn a_cached_token_still_expires() {
    let auth_token = "c".repeat(64);
    let now_s = NOW_MS / 1000;
    let jwt = hs256(&format!(r#"{{"sub":"{auth_token}","exp":{}}}"#, now_s + 10));
    let snapshot = Snapshot::build(&hs256_state(&auth_token)).unwrap();
    let gate = Gate::new(1000);
    let headers = bearer(&jwt);
    assert_eq!(
        decide(&gate, &snapshot, &headers, NOW_MS),
        (Ok(()), CacheUse::Miss)
    );
    assert_eq!(
        decide(&gate, &snapshot, &headers, NOW_MS + 60_000),
        (Ok(()), CacheUse::Hit)
    );
    assert_eq!(
        decide(&gate, &snapshot, &headers, NOW_MS + 70_000),
        (Err(Reject::TokenExpired), CacheUse::NotUsed)
    );
    // The entry is dropped: a client retrying the expired token does not keep it cached.
    let cache = gate.cache().unwrap();
    cache.run_pending_tasks();
    assert_eq!(cache.entry_count(), 0);
}

#[test]
fn auth_method_must_match_the_profile() {
    let auth_token = "d".repeat(64);
    let token_profile = Snapshot::build(&state_with(&auth_token, AuthConfig::Token)).unwrap();
    let jwt_profile = Snapshot::build(&hs256_state(&auth_token)).unwrap();
    let gate = Gate::new(100);
    let jwt = hs256(&format!(r#"{{"sub":"{auth_token}"}}"#));
    assert_eq!(
        decide(&gate, &token_profile, &bearer(&jwt), NOW_MS).0,
        Err(Reject::InvalidToken)
    );
    let mut raw = HeaderMap::new();
    raw.insert("api-token", HeaderValue::from_str(&auth_token).unwrap());
    assert_eq!(
        decide(&gate, &jwt_profile, &raw, NOW_MS).0,
        Err(Reject::InvalidToken)
    );
    assert_eq!(decide(&gate, &token_profile, &raw, NOW_MS).0, Ok(()));
}

#[test]
fn ip_collection_route_rate_limit_and_endpoint_state() {
    let auth_token = "9".repeat(64);
    let mut raw = HeaderMap::new();
    raw.insert("api-token", HeaderValue::from_str(&auth_token).unwrap());
    let gate = Gate::new(0);
    let ask = |state: &State, path: &str| {
        let snapshot = Snapshot::build(state).unwrap();
        let request = Request {
            method: &Method::GET,
            path,
            headers: &raw,
            peer: peer(),
            now_ms: NOW_MS,
        };
        gate.decide(&snapshot, &request)
            .result
            .map(|_| ())
            .map_err(|r| r.code())
    };
    let mut state = state_with(&auth_token, AuthConfig::Token);
    assert_eq!(ask(&state, "/api/ping"), Ok(()));
    assert_eq!(ask(&state, "/api/nope"), Err("not_found"));
    assert_eq!(ask(&state, "/nope/ping"), Err("not_found"));

    state.profiles[0].ip_allow = vec!["10.0.0.0/8".into()];
    assert_eq!(ask(&state, "/api/ping"), Err("forbidden"));
    state.profiles[0].ip_allow = vec!["10.0.0.0/8".into(), "127.0.0.0/8".into()];
    assert_eq!(ask(&state, "/api/ping"), Ok(()));

    state.profiles[0].collections.clear();
    assert_eq!(ask(&state, "/api/ping"), Err("forbidden"));
    state.profiles[0].collections = vec!["col1".into()];

    state.collections[0].endpoints[0].active = false;
    assert_eq!(ask(&state, "/api/ping"), Err("not_found"));
    state.collections[0].endpoints[0].active = true;

    state.profiles[0].policy = Some(Policy {
        rate_limit: Some(RateLimit {
            requests: 2,
            per_s: 60,
            scope: Default::default(),
        }),
        quota: None,
    });
    let snapshot = Snapshot::build(&state).unwrap();
    let request = Request {
        method: &Method::GET,
        path: "/api/ping",
        headers: &raw,
        peer: peer(),
        now_ms: NOW_MS,
    };
    assert!(gate.decide(&snapshot, &request).result.is_ok());
    assert!(gate.decide(&snapshot, &request).result.is_ok());
    match gate.decide(&snapshot, &request).result {
        Err(Reject::RateLimited(limited)) => assert!((1..=30).contains(&limited.retry_after_s)),
        other => panic!("expected rate_limited, got {:?}", other.err()),
    }
    // The limiter survives a rebuild with the same policy.
    let rebuilt = rebuild(&state, &snapshot).unwrap();
    assert!(matches!(
        gate.decide(&rebuilt, &request).result,
        Err(Reject::RateLimited(_))
    ));
}

#[test]
fn unknown_tokens_are_rejected_before_signature_work() {
    let snapshot = Snapshot::build(&hs256_state(&"1".repeat(64))).unwrap();
    let gate = Gate::new(100);
    // Signed with a key nobody has, naming a token nobody has: invalid_token, never cached, and
    // not counted as a cache miss either (it never got as far as the cache's work).
    let jwt = hs256(r#"{"sub":"unknown"}"#);
    assert_eq!(
        decide(&gate, &snapshot, &bearer(&jwt), NOW_MS),
        (Err(Reject::InvalidToken), CacheUse::NotUsed)
    );
    assert_eq!(
        decide(&gate, &snapshot, &bearer(&jwt), NOW_MS),
        (Err(Reject::InvalidToken), CacheUse::NotUsed)
    );
    assert_eq!(
        decide(&gate, &snapshot, &HeaderMap::new(), NOW_MS).0,
        Err(Reject::MissingCredentials)
    );
}

fn decide_on(
    gate: &Gate,
    snapshot: &Snapshot,
    headers: &HeaderMap,
    now_ms: u64,
    memo: &mut ConnectionMemo,
) -> (Result<(), Reject>, CacheUse) {
    let request = Request {
        method: &Method::GET,
        path: "/api/ping",
        headers,
        peer: peer(),
        now_ms,
    };
    let verdict = gate.decide_on_connection(snapshot, &request, Some(memo));
    (verdict.result.map(|_| ()), verdict.cache)
}

#[test]
fn a_connection_recalls_its_last_jwt_and_rechecks_it_like_a_cache_hit() {
    let auth_token = "7".repeat(64);
    let now_s = NOW_MS / 1000;
    let jwt = hs256(&format!(r#"{{"sub":"{auth_token}","exp":{}}}"#, now_s + 10));
    let other = hs256(&format!(r#"{{"sub":"{auth_token}","jti":"2"}}"#));
    let mut state = hs256_state(&auth_token);
    let snapshot = Snapshot::build(&state).unwrap();
    let gate = Gate::new(1000);
    let mut memo = ConnectionMemo::default();
    let headers = bearer(&jwt);
    assert_eq!(
        decide_on(&gate, &snapshot, &headers, NOW_MS, &mut memo),
        (Ok(()), CacheUse::Miss)
    );
    assert_eq!(
        decide_on(&gate, &snapshot, &headers, NOW_MS, &mut memo),
        (Ok(()), CacheUse::Hit)
    );
    // A different token on the same connection is not taken for the remembered one.
    let forged = format!("{}x", &jwt[..jwt.len() - 1]);
    assert_eq!(
        decide_on(&gate, &snapshot, &bearer(&forged), NOW_MS, &mut memo).0,
        Err(Reject::InvalidToken)
    );
    assert_eq!(
        decide_on(&gate, &snapshot, &bearer(&other), NOW_MS, &mut memo),
        (Ok(()), CacheUse::Miss)
    );
    assert_eq!(
        decide_on(&gate, &snapshot, &headers, NOW_MS, &mut memo),
        (Ok(()), CacheUse::Hit)
    );
    // Expiry, disable and refresh apply to the remembered token at once.
    assert_eq!(
        decide_on(&gate, &snapshot, &headers, NOW_MS + 70_000, &mut memo).0,
        Err(Reject::TokenExpired)
    );
    state.profiles[0].active = false;
    let disabled = rebuild(&state, &snapshot).unwrap();
    assert_eq!(
        decide_on(&gate, &disabled, &headers, NOW_MS, &mut memo).0,
        Err(Reject::InvalidToken)
    );
    state.profiles[0].active = true;
    state.profiles[0].token = stored(&"6".repeat(64));
    state.profiles[0].generation += 1;
    let refreshed = rebuild(&state, &snapshot).unwrap();
    assert_eq!(
        decide_on(&gate, &refreshed, &headers, NOW_MS, &mut memo).0,
        Err(Reject::InvalidToken)
    );
    // With the cache off, the connection remembers nothing either: every request is verified.
    let uncached = Gate::new(0);
    let mut memo = ConnectionMemo::default();
    for _ in 0..2 {
        assert_eq!(
            decide_on(&uncached, &snapshot, &headers, NOW_MS, &mut memo),
            (Ok(()), CacheUse::NotUsed)
        );
    }
}

#[test]
fn a_connection_recalls_its_last_auth_token_digest_but_decides_afresh() {
    let token = "7".repeat(64);
    let mut state = state_with(&token, AuthConfig::Token);
    let snapshot = Snapshot::build(&state).unwrap();
    let gate = Gate::new(1000);
    let mut memo = ConnectionMemo::default();
    let headers = |t: &str| {
        let mut h = HeaderMap::new();
        h.insert("api-token", t.parse().unwrap());
        h
    };
    for _ in 0..2 {
        assert_eq!(
            decide_on(&gate, &snapshot, &headers(&token), NOW_MS, &mut memo).0,
            Ok(())
        );
    }
    // Another token on the same connection is digested afresh, then the first one again.
    let other = format!("{}8", &token[..63]);
    assert_eq!(
        decide_on(&gate, &snapshot, &headers(&other), NOW_MS, &mut memo).0,
        Err(Reject::InvalidToken)
    );
    assert_eq!(
        decide_on(&gate, &snapshot, &headers(&token), NOW_MS, &mut memo).0,
        Ok(())
    );
    // A refresh and a disable apply to the remembered token at once.
    state.profiles[0].active = false;
    let disabled = rebuild(&state, &snapshot).unwrap();
    assert_eq!(
        decide_on(&gate, &disabled, &headers(&token), NOW_MS, &mut memo).0,
        Err(Reject::InvalidToken)
    );
    state.profiles[0].active = true;
    state.profiles[0].token = stored(&"6".repeat(64));
    state.profiles[0].generation += 1;
    let refreshed = rebuild(&state, &snapshot).unwrap();
    assert_eq!(
        decide_on(&gate, &refreshed, &headers(&token), NOW_MS, &mut memo).0,
        Err(Reject::InvalidToken)
    );
    assert_eq!(
        decide_on(
            &gate,
            &refreshed,
            &headers(&"6".repeat(64)),
            NOW_MS,
            &mut memo
        )
        .0,
        Ok(())
    );
}

/// `previous` with every object of `state` put again, the way an admin change applies: profiles
/// keep their rate limiters.
pub(crate) fn rebuild(
    state: &State,
    previous: &Snapshot,
) -> Result<Snapshot, tokengate::core::registry::BuildError> {
    use tokengate::core::catalog::{Applied, Catalog, ChangeSet, RowOp};
    let catalog = Catalog::from_state(state);
    let applied: Vec<Applied> = ChangeSet::from_state(state)
        .ops
        .into_iter()
        .filter_map(|op| match op {
            RowOp::Put(row) => Some(Applied {
                kind: row.kind(),
                id: row.id().to_owned(),
                before: None,
                after: Some(row),
            }),
            RowOp::Delete(..) => None,
        })
        .collect();
    previous.apply(&applied, &catalog)
}
