//! Test data: files under `tests/data`, stored tokens, interop profiles, client-side JWT signing.

use std::path::PathBuf;

use serde_json::{Map, Value};
use tokengate::core::keys::HmacKey;
use tokengate::core::model::{
    AuthConfig, Client, Collection, Endpoint, FixedResponse, JwtAlg, JwtConfig, Profile, State,
    StoredToken,
};
use tokengate::core::token::{hex, token_digest};
use tokengate::tools::jwt_sign::SigningKey;

/// The path of a file under `tests/data`.
pub fn data_path(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

/// The text of a file under `tests/data`.
pub fn read_data(path: &str) -> String {
    std::fs::read_to_string(data_path(path)).unwrap()
}

/// How the store keeps `token`: its SHA-256 digest and last four characters.
pub fn stored(token: &str) -> StoredToken {
    StoredToken {
        sha256: hex(&token_digest(token.as_bytes())),
        last4: token[token.len() - 4..].to_owned(),
    }
}

/// A state with `/api/ping` (fixed 200), one client, and one profile holding `token`.
pub fn state_with(token: &str, auth: AuthConfig) -> State {
    State {
        collections: vec![Collection {
            id: "col1".into(),
            name: "API".into(),
            path: "api".into(),
            endpoints: vec![Endpoint {
                id: "ep1".into(),
                name: "ping".into(),
                method: "GET".into(),
                path: "/ping".into(),
                upstream: None,
                response: Some(FixedResponse {
                    status: 200,
                    headers: Default::default(),
                    body: serde_json::json!({"pong": true}),
                }),
                active: true,
            }],
        }],
        clients: vec![Client {
            id: "cl1".into(),
            name: "Acme".into(),
            portal_key: "pk".into(),
            active: true,
        }],
        profiles: vec![Profile {
            id: "p1".into(),
            client_id: "cl1".into(),
            name: "main".into(),
            collections: vec!["col1".into()],
            auth,
            active: true,
            policy: None,
            ip_allow: vec![],
            token: stored(token),
            previous_token: None,
            generation: 1,
        }],
        ..State::default()
    }
}

/// JWT settings with nothing but `alg` set.
pub fn jwt_config(alg: JwtAlg) -> JwtConfig {
    JwtConfig {
        alg,
        secret: None,
        secret_is_base64: false,
        public_key: None,
        required_claims: vec![],
        max_lifetime_s: None,
        allowed_issuers: vec![],
        leeway_s: None,
    }
}

/// The auth settings of the interop profile `name` of `jwt-interop/cases.json`: the HS256 secret
/// file's text without its trailing newline, or the public key file's text.
pub fn interop_auth(cases: &Value, name: &str) -> AuthConfig {
    let profile = &cases["profiles"][name];
    let mut auth = jwt_config(if profile["alg"] == "HS256" {
        JwtAlg::HS256
    } else {
        JwtAlg::RS256
    });
    if let Some(file) = profile["secret_file"].as_str() {
        let secret = read_data(&format!("jwt-interop/{file}"));
        auth.secret = Some(secret.trim_end_matches(['\r', '\n']).to_owned());
    }
    if let Some(file) = profile["public_key_file"].as_str() {
        auth.public_key = Some(read_data(&format!("jwt-interop/{file}")));
    }
    AuthConfig::Jwt(auth)
}

/// Seconds since the Unix epoch.
pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An HS256 JWT over `claims` (a JSON object) signed with `secret`'s UTF-8 bytes.
pub fn hs256(secret: &str, claims: Value) -> String {
    let Value::Object(claims) = claims else {
        panic!("claims must be a JSON object")
    };
    let claims: Map<String, Value> = claims;
    let key = SigningKey::Hs256(HmacKey::from_secret(secret, false).unwrap());
    key.sign(&claims).unwrap()
}
