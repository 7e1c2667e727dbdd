//! A connection's memo of its last admission (`core::decision_memo`, through
//! `Gate::decide_on_connection`): a request that repeats the last admitted one is answered from
//! the memo, and that answer is always the one a fresh decision gives. The clock (grace deadline,
//! `exp`), the rate limit, a change of client address, method or path, and any admin change apply
//! to the very next request.

use std::net::IpAddr;

use crate::decision::{bearer, hs256, hs256_state, rebuild, NOW_MS};
use crate::support::fixtures::{state_with, stored};
use http::{HeaderMap, HeaderValue, Method};
use tokengate::core::gate::{CacheUse, ConnectionMemo, Gate, Request};
use tokengate::core::model::*;
use tokengate::core::registry::Snapshot;

fn local() -> IpAddr {
    "127.0.0.1".parse().unwrap()
}

fn api_token(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("api-token", HeaderValue::from_str(token).unwrap());
    headers
}

/// One request on the connection of `memo`: `Ok(endpoint id)` or the refusal's code, and the
/// cache use.
#[allow(clippy::too_many_arguments)]
fn ask(
    gate: &Gate,
    snapshot: &Snapshot,
    memo: &mut ConnectionMemo,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    peer: IpAddr,
    now_ms: u64,
) -> (Result<String, &'static str>, CacheUse) {
    let request = Request {
        method,
        path,
        headers,
        peer,
        now_ms,
    };
    let verdict = gate.decide_on_connection(snapshot, &request, Some(memo));
    let result = verdict
        .result
        .map(|admitted| admitted.endpoint.id.to_string())
        .map_err(|reject| reject.code());
    (result, verdict.cache)
}

fn ping(
    gate: &Gate,
    snapshot: &Snapshot,
    memo: &mut ConnectionMemo,
    headers: &HeaderMap,
    now_ms: u64,
) -> Result<String, &'static str> {
    ask(
        gate,
        snapshot,
        memo,
        &Method::GET,
        "/api/ping",
        headers,
        local(),
        now_ms,
    )
    .0
}

#[test]
fn a_repeat_is_remembered_from_the_second_time_and_answers_as_afresh() {
    let token = "7".repeat(64);
    let mut state = state_with(&token, AuthConfig::Token);
    state.collections[0].endpoints.push(Endpoint {
        id: "ep2".into(),
        name: "other".into(),
        method: "POST".into(),
        path: "/other".into(),
        upstream: None,
        response: None,
        active: true,
    });
    state.collections[0].endpoints[1].response = state.collections[0].endpoints[0].response.clone();
    let snapshot = Snapshot::build(&state).unwrap();
    let gate = Gate::new(1000);
    let mut memo = ConnectionMemo::default();
    let headers = api_token(&token);
    assert_eq!(
        ping(&gate, &snapshot, &mut memo, &headers, NOW_MS),
        Ok("ep1".into())
    );
    assert!(
        !memo.remembers_admission(),
        "a first request is not a repeat"
    );
    assert_eq!(
        ping(&gate, &snapshot, &mut memo, &headers, NOW_MS),
        Ok("ep1".into())
    );
    assert!(memo.remembers_admission());
    for _ in 0..3 {
        assert_eq!(
            ping(&gate, &snapshot, &mut memo, &headers, NOW_MS),
            Ok("ep1".into())
        );
    }
    // Another method, path, address or token is decided afresh.
    let post = |memo: &mut ConnectionMemo, path: &str| {
        ask(
            &gate,
            &snapshot,
            memo,
            &Method::POST,
            path,
            &headers,
            local(),
            NOW_MS,
        )
        .0
    };
    assert_eq!(post(&mut memo, "/api/ping"), Err("not_found"));
    assert_eq!(post(&mut memo, "/api/other"), Ok("ep2".into()));
    let get = |memo: &mut ConnectionMemo, path: &str, peer: IpAddr| {
        ask(
            &gate,
            &snapshot,
            memo,
            &Method::GET,
            path,
            &headers,
            peer,
            NOW_MS,
        )
        .0
    };
    assert_eq!(get(&mut memo, "/api/other", local()), Err("not_found"));
    assert_eq!(get(&mut memo, "/api/pin", local()), Err("not_found"));
    let other = format!("{}8", &token[..63]);
    assert_eq!(
        ping(&gate, &snapshot, &mut memo, &api_token(&other), NOW_MS),
        Err("invalid_token")
    );
    assert_eq!(
        ping(&gate, &snapshot, &mut memo, &headers, NOW_MS),
        Ok("ep1".into())
    );

    // An address outside `ip_allow`: refused, though the memo holds this token and route.
    state.profiles[0].ip_allow = vec!["127.0.0.0/8".into()];
    let limited = rebuild(&state, &snapshot).unwrap();
    for _ in 0..3 {
        assert_eq!(
            ping(&gate, &limited, &mut memo, &headers, NOW_MS),
            Ok("ep1".into())
        );
    }
    assert!(memo.remembers_admission());
    let outside: IpAddr = "10.1.2.3".parse().unwrap();
    let from = |memo: &mut ConnectionMemo, peer: IpAddr| {
        ask(
            &gate,
            &limited,
            memo,
            &Method::GET,
            "/api/ping",
            &headers,
            peer,
            NOW_MS,
        )
        .0
    };
    assert_eq!(from(&mut memo, outside), Err("forbidden"));
    assert_eq!(from(&mut memo, local()), Ok("ep1".into()));
}

#[test]
fn admin_changes_apply_to_the_next_repeat() {
    let token = "7".repeat(64);
    let mut state = state_with(&token, AuthConfig::Token);
    let snapshot = Snapshot::build(&state).unwrap();
    let gate = Gate::new(1000);
    let mut memo = ConnectionMemo::default();
    let headers = api_token(&token);
    for _ in 0..3 {
        assert_eq!(
            ping(&gate, &snapshot, &mut memo, &headers, NOW_MS),
            Ok("ep1".into())
        );
    }
    assert!(memo.remembers_admission());
    let mut expect_after = |state: &State, code: &'static str| {
        let next = rebuild(state, &snapshot).unwrap();
        assert_eq!(ping(&gate, &next, &mut memo, &headers, NOW_MS), Err(code));
    };
    state.profiles[0].active = false;
    expect_after(&state, "invalid_token");
    state.profiles[0].active = true;
    state.profiles[0].collections.clear();
    expect_after(&state, "forbidden");
    state.profiles[0].collections = vec!["col1".into()];
    state.collections[0].endpoints[0].active = false;
    expect_after(&state, "not_found");
    state.collections[0].endpoints[0].active = true;
    state.profiles[0].token = stored(&"6".repeat(64));
    state.profiles[0].generation += 1;
    expect_after(&state, "invalid_token");
}

#[test]
fn the_clock_and_the_rate_limit_still_run_on_a_repeat() {
    // A refreshed token in its grace period stops at its deadline, repeats or not.
    let old = "a".repeat(64);
    let mut state = state_with(&"b".repeat(64), AuthConfig::Token);
    state.profiles[0].previous_token = Some(GraceToken {
        sha256: stored(&old).sha256,
        valid_until_ms: NOW_MS + 10_000,
    });
    state.profiles[0].policy = Some(Policy {
        rate_limit: Some(RateLimit {
            requests: 4,
            per_s: 60,
            scope: Default::default(),
        }),
        quota: None,
    });
    let snapshot = Snapshot::build(&state).unwrap();
    let gate = Gate::new(1000);
    let mut memo = ConnectionMemo::default();
    let headers = api_token(&old);
    for _ in 0..3 {
        assert_eq!(
            ping(&gate, &snapshot, &mut memo, &headers, NOW_MS),
            Ok("ep1".into())
        );
    }
    assert!(memo.remembers_admission());
    assert_eq!(
        ping(&gate, &snapshot, &mut memo, &headers, NOW_MS + 9_999),
        Ok("ep1".into())
    );
    // The fifth request in the minute: the limiter counted the ones answered from the memo.
    assert_eq!(
        ping(&gate, &snapshot, &mut memo, &headers, NOW_MS + 9_999),
        Err("rate_limited")
    );
    assert_eq!(
        ping(&gate, &snapshot, &mut memo, &headers, NOW_MS + 10_000),
        Err("invalid_token")
    );

    // A JWT's `exp` (with the profile's leeway) ends a run of repeats at once.
    let auth_token = "c".repeat(64);
    let now_s = NOW_MS / 1000;
    let jwt = hs256(&format!(r#"{{"sub":"{auth_token}","exp":{}}}"#, now_s + 10));
    let snapshot = Snapshot::build(&hs256_state(&auth_token)).unwrap();
    let mut memo = ConnectionMemo::default();
    let headers = bearer(&jwt);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (result, cache) = ask(
            &gate,
            &snapshot,
            &mut memo,
            &Method::GET,
            "/api/ping",
            &headers,
            local(),
            NOW_MS,
        );
        assert_eq!(result, Ok("ep1".into()));
        seen.push(cache);
    }
    assert_eq!(
        seen,
        [CacheUse::Miss, CacheUse::Hit, CacheUse::Hit, CacheUse::Hit]
    );
    assert!(memo.remembers_admission());
    let leeway_ms = jwt_leeway_ms(&snapshot);
    let expires_ms = (now_s + 10) * 1000 + leeway_ms;
    assert_eq!(
        ping(&gate, &snapshot, &mut memo, &headers, expires_ms - 1),
        Ok("ep1".into())
    );
    assert_eq!(
        ping(&gate, &snapshot, &mut memo, &headers, expires_ms),
        Err("token_expired")
    );
}

/// The profile's JWT leeway, milliseconds.
fn jwt_leeway_ms(snapshot: &Snapshot) -> u64 {
    let profile = snapshot.profile("p1").unwrap();
    u64::try_from(profile.leeway_s()).unwrap() * 1000
}

#[test]
fn nothing_is_remembered_without_the_cache_or_on_a_shared_connection() {
    // With the cache off every JWT is verified afresh: no admission is kept.
    let auth_token = "d".repeat(64);
    let jwt = hs256(&format!(r#"{{"sub":"{auth_token}"}}"#));
    let snapshot = Snapshot::build(&hs256_state(&auth_token)).unwrap();
    let uncached = Gate::new(0);
    let mut memo = ConnectionMemo::default();
    for _ in 0..3 {
        let (result, cache) = ask(
            &uncached,
            &snapshot,
            &mut memo,
            &Method::GET,
            "/api/ping",
            &bearer(&jwt),
            local(),
            NOW_MS,
        );
        assert_eq!((result, cache), (Ok("ep1".into()), CacheUse::NotUsed));
    }
    assert!(!memo.remembers_admission());

    // A connection that carries two clients' requests in turn (a pooling proxy) never
    // repeats, so it never fills the memo.
    let first = "e".repeat(64);
    let second = "f".repeat(64);
    let mut state = state_with(&first, AuthConfig::Token);
    let mut other = state.profiles[0].clone();
    other.id = "p2".into();
    other.token = stored(&second);
    state.profiles.push(other);
    let snapshot = Snapshot::build(&state).unwrap();
    let gate = Gate::new(1000);
    let mut memo = ConnectionMemo::default();
    for _ in 0..4 {
        for token in [&first, &second] {
            assert_eq!(
                ping(&gate, &snapshot, &mut memo, &api_token(token), NOW_MS),
                Ok("ep1".into())
            );
        }
    }
    assert!(!memo.remembers_admission());
}
