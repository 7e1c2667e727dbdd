//! The JWT interop cases (PyJWT tokens; ssh-keygen and openssl keys) end to end over HTTP.
//!
//! Every case's key claim is the same auth token, but the admin API only hands out tokens it
//! generates; so each profile configuration's state is written straight into a data directory
//! with the file store, and a server is started on it (one per configuration).

use std::sync::Arc;

use crate::support::fixtures::{interop_auth, read_data, state_with};
use crate::support::gateway::Gateway;
use crate::support::{write_state, TempDir};
use serde_json::Value;

#[tokio::test]
async fn every_interop_case_gets_its_expected_answer_over_http() {
    let cases: Value = serde_json::from_str(&read_data("jwt-interop/cases.json")).unwrap();
    let sub = cases["sub"].as_str().unwrap();
    let all = cases["cases"].as_array().unwrap();
    let mut checked = 0;
    for profile in cases["profiles"].as_object().unwrap().keys() {
        let dir = Arc::new(TempDir::new());
        write_state(dir.path(), &state_with(sub, interop_auth(&cases, profile)));
        let gw = Gateway::start_in(dir, |_| {}).await;
        for case in all.iter().filter(|c| c["profile"] == profile.as_str()) {
            let name = case["name"].as_str().unwrap();
            let token = case["token"].as_str().unwrap();
            let expect = case["expect"].as_str().unwrap();
            // Twice: the second may be answered from the verified-token cache, and must agree.
            for attempt in 0..2 {
                let reply = gw.get_with_jwt("/api/ping", token).await;
                let got = if reply.status == 200 {
                    assert_eq!(reply.json(), serde_json::json!({"pong": true}), "{name}");
                    "ok".to_owned()
                } else {
                    reply
                        .assert_error(401, expect)
                        .assert_free_of(&[token, sub]);
                    reply.json()["error"].as_str().unwrap().to_owned()
                };
                assert_eq!(got, expect, "case {name} (attempt {attempt})");
            }
            checked += 1;
        }
        gw.stop().await;
    }
    assert_eq!(checked, all.len(), "every case names a known profile");
    assert!(checked >= 20);
}
