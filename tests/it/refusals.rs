//! The gate's memo of settled refusals (`core::refusals`): a JWT the snapshot refused for good is
//! refused again from the memo, and no memoized refusal outlives its snapshot or decides what
//! the clock decides.

use crate::decision::{bearer, decide, hs256, hs256_state, rebuild, NOW_MS, SECRET};
use crate::support::fixtures::stored;
use tokengate::core::gate::{CacheUse, Gate};
use tokengate::core::keys::HmacKey;
use tokengate::core::model::AuthConfig;
use tokengate::core::registry::Snapshot;
use tokengate::core::reject::Reject;

fn memoized(gate: &Gate, jwt: &str, snapshot: &Snapshot) -> bool {
    gate.refusals()
        .expect("the memo is on with the cache")
        .contains(jwt.as_bytes(), snapshot.epoch())
}

#[test]
fn a_token_naming_no_profile_is_refused_from_the_memo_until_an_admin_change() {
    let known = "1".repeat(64);
    let newcomer = "2".repeat(64);
    let mut state = hs256_state(&known);
    let before = Snapshot::build(&state).unwrap();
    let gate = Gate::new(100);
    let jwt = hs256(&format!(r#"{{"sub":"{newcomer}","name":"Ann"}}"#));

    assert!(!memoized(&gate, &jwt, &before));
    for _ in 0..2 {
        assert_eq!(
            decide(&gate, &before, &bearer(&jwt), NOW_MS),
            (Err(Reject::InvalidToken), CacheUse::NotUsed)
        );
        assert!(memoized(&gate, &jwt, &before));
    }
    // The profile's token is refreshed to the one the JWT names: the next snapshot admits it
    // at once, although the memo still holds the refusal of the previous snapshot.
    state.profiles[0].token = stored(&newcomer);
    state.profiles[0].generation += 1;
    let after = rebuild(&state, &before).unwrap();
    assert_ne!(after.epoch(), before.epoch());
    assert!(!memoized(&gate, &jwt, &after));
    assert_eq!(
        decide(&gate, &after, &bearer(&jwt), NOW_MS),
        (Ok(()), CacheUse::Miss)
    );
    // And the previous snapshot, still held by a request in flight, still refuses it.
    assert_eq!(
        decide(&gate, &before, &bearer(&jwt), NOW_MS).0,
        Err(Reject::InvalidToken)
    );
}

#[test]
fn a_bad_signature_is_memoized_and_a_new_key_decides_afresh() {
    let auth_token = "3".repeat(64);
    let mut state = hs256_state(&auth_token);
    let before = Snapshot::build(&state).unwrap();
    let gate = Gate::new(100);
    // Signed with a secret the profile will hold only after the admin rotates its key.
    let next_secret = "fedcba9876543210fedcba9876543210fedcba98";
    let good = hs256(&format!(r#"{{"sub":"{auth_token}"}}"#));
    let (input, _) = good.rsplit_once('.').unwrap();
    let signature = HmacKey::from_secret(next_secret, false)
        .unwrap()
        .sign(input.as_bytes());
    let forged = format!(
        "{input}.{}",
        base64::Engine::encode(&tokengate::core::jwt::BASE64URL, signature)
    );

    for _ in 0..2 {
        assert_eq!(
            decide(&gate, &before, &bearer(&forged), NOW_MS).0,
            Err(Reject::InvalidToken)
        );
        assert!(memoized(&gate, &forged, &before));
    }
    // The valid token of the same profile is not affected by its forged twin.
    assert_eq!(decide(&gate, &before, &bearer(&good), NOW_MS).0, Ok(()));

    let AuthConfig::Jwt(auth) = &mut state.profiles[0].auth else {
        unreachable!("hs256_state holds a JWT profile")
    };
    assert_eq!(auth.secret.as_deref(), Some(SECRET));
    auth.secret = Some(next_secret.into());
    state.profiles[0].generation += 1; // as every admin change of a profile does
    let rotated = rebuild(&state, &before).unwrap();
    assert_eq!(decide(&gate, &rotated, &bearer(&forged), NOW_MS).0, Ok(()));
    assert_eq!(
        decide(&gate, &rotated, &bearer(&good), NOW_MS).0,
        Err(Reject::InvalidToken)
    );
}

#[test]
fn what_the_clock_decides_is_never_memoized() {
    let auth_token = "4".repeat(64);
    let state = hs256_state(&auth_token);
    let snapshot = Snapshot::build(&state).unwrap();
    let gate = Gate::new(100);
    let now_s = NOW_MS / 1000;
    // Well past the default leeway either way.
    let expired = hs256(&format!(
        r#"{{"sub":"{auth_token}","exp":{}}}"#,
        now_s - 600
    ));
    let early = hs256(&format!(
        r#"{{"sub":"{auth_token}","nbf":{}}}"#,
        now_s + 600
    ));

    assert_eq!(
        decide(&gate, &snapshot, &bearer(&expired), NOW_MS).0,
        Err(Reject::TokenExpired)
    );
    assert!(!memoized(&gate, &expired, &snapshot));
    assert_eq!(
        decide(&gate, &snapshot, &bearer(&expired), NOW_MS - 1_200_000).0,
        Ok(()),
        "twenty minutes earlier the same token was valid"
    );
    assert_eq!(
        decide(&gate, &snapshot, &bearer(&early), NOW_MS).0,
        Err(Reject::TokenNotYetValid)
    );
    assert!(!memoized(&gate, &early, &snapshot));
    assert_eq!(
        decide(&gate, &snapshot, &bearer(&early), NOW_MS + 1_200_000).0,
        Ok(())
    );
}

#[test]
fn without_the_cache_there_is_no_memo() {
    let gate = Gate::new(0);
    assert!(gate.refusals().is_none());
    let snapshot = Snapshot::build(&hs256_state(&"5".repeat(64))).unwrap();
    let jwt = hs256(r#"{"sub":"nobody"}"#);
    assert_eq!(
        decide(&gate, &snapshot, &bearer(&jwt), NOW_MS).0,
        Err(Reject::InvalidToken)
    );
}
