//! The stored objects — collections, endpoints, clients, access profiles — as the store persists them.
//!
//! These are plain serde structs: the file store writes a [`State`] as one JSON document and
//! the registry compiles it into the hot-path snapshot. Raw auth tokens never appear here,
//! only their SHA-256 digest and the last four characters for the mask.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole persisted state: everything the admin API can change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Format version of this document, for future migrations.
    #[serde(default = "State::current_format")]
    pub format: u32,
    /// Bumped on every change; lets nodes and tests tell two states apart.
    #[serde(default)]
    pub revision: u64,
    /// API collections, each a URL prefix with endpoints under it.
    #[serde(default)]
    pub collections: Vec<Collection>,
    /// Companies or teams that call the APIs.
    #[serde(default)]
    pub clients: Vec<Client>,
    /// Access profiles: who may call which collections, and how they authenticate.
    #[serde(default)]
    pub profiles: Vec<Profile>,
}

impl Default for State {
    fn default() -> Self {
        State {
            format: State::FORMAT,
            revision: 0,
            collections: vec![],
            clients: vec![],
            profiles: vec![],
        }
    }
}

impl State {
    /// The format this build writes.
    pub const FORMAT: u32 = 1;

    fn current_format() -> u32 {
        Self::FORMAT
    }
}

/// A set of endpoints published under one URL segment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Collection {
    /// Server-assigned identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// One URL segment, `[a-z0-9-]+`, never starting with `_`; unique.
    pub path: String,
    /// The callable endpoints of this collection.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

/// One callable API endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Endpoint {
    /// Server-assigned identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// HTTP method, upper case (`GET`, `POST`, …).
    pub method: String,
    /// Path relative to the collection, starting with `/`; may hold `:param` segments.
    pub path: String,
    /// URL the request is forwarded to (exclusive with `response`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Fixed response returned as is (exclusive with `upstream`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<FixedResponse>,
    /// Inactive endpoints answer 404.
    #[serde(default = "default_true")]
    pub active: bool,
}

/// A canned response: for mocks, demos and benchmarks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FixedResponse {
    /// HTTP status code.
    #[serde(default = "default_status")]
    pub status: u16,
    /// Response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Response body: any JSON value, sent as JSON.
    #[serde(default)]
    pub body: serde_json::Value,
}

/// A company or team that calls the APIs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Client {
    /// Server-assigned identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Unguessable key of the client's portal page.
    pub portal_key: String,
    /// A disabled client disables every one of its profiles.
    #[serde(default = "default_true")]
    pub active: bool,
}

/// An access profile: one credential of a client and what it may call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Profile {
    /// Server-assigned identifier.
    pub id: String,
    /// The owning client's id.
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// Ids of the collections this profile may call.
    #[serde(default)]
    pub collections: Vec<String>,
    /// How the client proves it holds the auth token.
    pub auth: AuthConfig,
    /// Inactive profiles are rejected with `invalid_token`.
    #[serde(default = "default_true")]
    pub active: bool,
    /// Optional rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// Optional CIDR allow-list of peer addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_allow: Vec<String>,
    /// The current auth token, as digest and mask.
    pub token: StoredToken,
    /// The previous auth token, still valid until its deadline (refresh with `grace_s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_token: Option<GraceToken>,
    /// Bumped on every change to the profile; a cached verification of an older generation is void.
    #[serde(default)]
    pub generation: u64,
}

/// An auth token as stored: never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredToken {
    /// Lowercase hex SHA-256 of the token's 64 characters.
    pub sha256: String,
    /// The token's last four characters, for `auth_token_masked`.
    pub last4: String,
}

/// A replaced auth token kept alive for a grace period.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GraceToken {
    /// Lowercase hex SHA-256 of the previous token.
    pub sha256: String,
    /// Unix time in milliseconds after which the previous token stops working.
    pub valid_until_ms: u64,
}

/// How a profile authenticates its caller.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthConfig {
    /// The raw auth token, in `API-Token` or Basic.
    Token,
    /// A JWT signed by the client, carrying the auth token as its key claim.
    Jwt(JwtConfig),
}

/// JWT settings of a profile.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The one algorithm accepted for this profile.
    pub alg: JwtAlg,
    /// HS256 shared secret, as pasted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Decode `secret` as standard base64 instead of using its UTF-8 bytes.
    #[serde(default, skip_serializing_if = "is_false")]
    pub secret_is_base64: bool,
    /// RS256 public key: OpenSSH line, SPKI PEM, PKCS#1 PEM or certificate PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Claims that must be present (only `exp`, `nbf`, `iat`, `iss`, `name` make sense).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_claims: Vec<String>,
    /// Longest accepted lifetime: `exp - iat`, or `exp - now` without `iat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime_s: Option<u64>,
    /// When non-empty, `iss` must be one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_issuers: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, seconds (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leeway_s: Option<u64>,
}

/// The JWS algorithms tokengate accepts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum JwtAlg {
    /// HMAC with SHA-256 and a shared secret.
    HS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and the client's RSA key pair.
    RS256,
}

/// Traffic policy of a profile (SPEC §1 `policy`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// A short-interval limit, per node or shared by the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// A long-interval request quota, counted across every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
}

/// `requests` per `per_s` seconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed in one window (the bucket size).
    pub requests: u64,
    /// Window length in seconds.
    pub per_s: u64,
    /// Who counts: each node alone, or the live nodes sharing `requests` equally.
    #[serde(default, skip_serializing_if = "RateLimitScope::is_node")]
    pub scope: RateLimitScope,
}

/// Where a rate limit is counted.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitScope {
    /// Each node admits `requests` per window on its own.
    #[default]
    Node,
    /// Each live node admits an equal share of `requests` (at least 1).
    Cluster,
}

impl RateLimitScope {
    /// Whether this is the default, per-node scope.
    pub fn is_node(&self) -> bool {
        *self == RateLimitScope::Node
    }
}

/// At most `requests` per window of `per_days` days; windows are counted in UTC from the Unix
/// epoch, so every node agrees where one ends.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Requests allowed in one window.
    pub requests: u64,
    /// Window length in days (1–366).
    pub per_days: u64,
}

fn default_true() -> bool {
    true
}

fn default_status() -> u16 {
    200
}

fn is_false(value: &bool) -> bool {
    !*value
}
