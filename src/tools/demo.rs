//! Seed data: the `serve --demo` collection, client and token profile, and the benchmark fixtures.
//!
//! The benchmark RSA key pair is the project's public test fixture (tests/data), embedded so the
//! harness runs anywhere; it protects nothing.

use serde_json::json;

use crate::core::model::{
    AuthConfig, Client, Collection, Endpoint, FixedResponse, JwtAlg, JwtConfig, Profile, State,
};
use crate::core::token::{self, NewToken};

/// PEM PKCS#8 private key of the benchmark RS256 profile (a public test fixture).
pub const BENCH_RSA_PRIVATE_PEM: &str = include_str!("../../tests/data/jwt-interop/rsa2048.key");
/// The benchmark's TLS certificate for `localhost` and 127.0.0.1 (a public test fixture,
/// tests/data/tls), its PKCS#8 key, and the CA that signed it.
pub const BENCH_TLS_CERT_PEM: &str = include_str!("../../tests/data/tls/bench.crt");
/// Private key of [`BENCH_TLS_CERT_PEM`].
pub const BENCH_TLS_KEY_PEM: &str = include_str!("../../tests/data/tls/bench.key");
/// The CA certificate that signed [`BENCH_TLS_CERT_PEM`].
pub const BENCH_TLS_CA_PEM: &str = include_str!("../../tests/data/tls/bench-ca.pem");
/// SPKI public key of the same pair.
pub const BENCH_RSA_PUBLIC_PEM: &str =
    include_str!("../../tests/data/jwt-interop/rsa2048.spki.pem");

/// Why seeding failed (the OS random source is unavailable).
#[derive(Debug)]
pub struct SeedError;

impl std::fmt::Display for SeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the operating system's random source failed")
    }
}

impl std::error::Error for SeedError {}

fn new_token() -> Result<NewToken, SeedError> {
    token::generate().map_err(|_| SeedError)
}

fn new_id() -> Result<String, SeedError> {
    token::random_id().map_err(|_| SeedError)
}

/// A fixed-response endpoint answering `{"ok":true}`.
pub fn hello_endpoint(method: &str, path: &str) -> Result<Endpoint, SeedError> {
    Ok(Endpoint {
        id: new_id()?,
        name: "hello".into(),
        method: method.into(),
        path: path.into(),
        upstream: None,
        response: Some(FixedResponse {
            status: 200,
            headers: Default::default(),
            body: json!({"ok": true}),
        }),
        active: true,
    })
}

/// Adds a collection and returns its id.
pub fn add_collection(
    state: &mut State,
    name: &str,
    path: &str,
    endpoints: Vec<Endpoint>,
) -> Result<String, SeedError> {
    let id = new_id()?;
    state.collections.push(Collection {
        id: id.clone(),
        name: name.into(),
        path: path.into(),
        endpoints,
    });
    Ok(id)
}

/// Adds a client and returns its id.
pub fn add_client(state: &mut State, name: &str) -> Result<String, SeedError> {
    let id = new_id()?;
    let portal_key = new_token()?.raw;
    state.clients.push(Client {
        id: id.clone(),
        name: name.into(),
        portal_key,
        active: true,
    });
    Ok(id)
}

/// Adds a profile and returns its raw auth token (the only time it exists).
pub fn add_profile(
    state: &mut State,
    client_id: &str,
    name: &str,
    collections: Vec<String>,
    auth: AuthConfig,
) -> Result<String, SeedError> {
    let token = new_token()?;
    state.profiles.push(Profile {
        id: new_id()?,
        client_id: client_id.into(),
        name: name.into(),
        collections,
        auth,
        active: true,
        policy: None,
        ip_allow: vec![],
        token: token.stored,
        previous_token: None,
        generation: 1,
    });
    Ok(token.raw)
}

/// A JWT auth config with defaults.
pub fn jwt_auth(alg: JwtAlg, secret: Option<String>, public_key: Option<String>) -> AuthConfig {
    AuthConfig::Jwt(JwtConfig {
        alg,
        secret,
        secret_is_base64: false,
        public_key,
        required_claims: vec![],
        max_lifetime_s: None,
        allowed_issuers: vec![],
        leeway_s: None,
    })
}

/// What [`seed_demo`] made that is shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoSeed {
    /// The demo profile's auth token.
    pub token: String,
    /// The demo client's portal key.
    pub portal_key: String,
}

/// Seeds the `--demo` data on an empty state: collection `demo` with `GET /hello` and
/// `GET /orders/:id` (fixed responses), a client and a token profile.
pub fn seed_demo(state: &mut State) -> Result<DemoSeed, SeedError> {
    let mut order = hello_endpoint("GET", "/orders/:id")?;
    order.name = "one order".into();
    order.response = Some(FixedResponse {
        status: 200,
        headers: Default::default(),
        body: json!({"order": "demo", "status": "shipped"}),
    });
    let collection = add_collection(
        state,
        "Demo",
        "demo",
        vec![hello_endpoint("GET", "/hello")?, order],
    )?;
    let client = add_client(state, "Demo client")?;
    let token = add_profile(
        state,
        &client,
        "demo token",
        vec![collection],
        AuthConfig::Token,
    )?;
    let portal_key = state
        .clients
        .iter()
        .find(|c| c.id == client)
        .map(|c| c.portal_key.clone())
        .unwrap_or_default();
    Ok(DemoSeed { token, portal_key })
}

/// The fixtures of the benchmarks: one collection `bench` with `GET /hello`, and three profiles.
pub struct BenchFixture {
    /// The state holding them.
    pub state: State,
    /// Auth token of the `token` profile.
    pub api_token: String,
    /// Auth token of the HS256 profile.
    pub hs256_token: String,
    /// Its shared secret.
    pub hs256_secret: String,
    /// Auth token of the RS256 profile (key: [`BENCH_RSA_PUBLIC_PEM`]).
    pub rs256_token: String,
}

/// Builds the benchmark fixtures.
pub fn bench_fixture() -> Result<BenchFixture, SeedError> {
    let mut state = State::default();
    let collection = add_collection(
        &mut state,
        "Bench",
        "bench",
        vec![hello_endpoint("GET", "/hello")?],
    )?;
    let client = add_client(&mut state, "Bench client")?;
    let api_token = add_profile(
        &mut state,
        &client,
        "token",
        vec![collection.clone()],
        AuthConfig::Token,
    )?;
    let hs256_secret = token::hex(&token::token_digest(new_token()?.raw.as_bytes()));
    let hs256_token = add_profile(
        &mut state,
        &client,
        "hs256",
        vec![collection.clone()],
        jwt_auth(JwtAlg::HS256, Some(hs256_secret.clone()), None),
    )?;
    let rs256_token = add_profile(
        &mut state,
        &client,
        "rs256",
        vec![collection],
        jwt_auth(JwtAlg::RS256, None, Some(BENCH_RSA_PUBLIC_PEM.into())),
    )?;
    Ok(BenchFixture {
        state,
        api_token,
        hs256_token,
        hs256_secret,
        rs256_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::registry::Snapshot;

    #[test]
    fn demo_and_bench_states_compile() {
        let mut state = State::default();
        let seed = seed_demo(&mut state).unwrap();
        assert_eq!(seed.token.len(), 64);
        assert_eq!(seed.portal_key.len(), 64);
        assert!(Snapshot::build(&state).is_ok());
        let fixture = bench_fixture().unwrap();
        assert!(Snapshot::build(&fixture.state).is_ok());
        assert_ne!(fixture.api_token, fixture.hs256_token);
    }
}
