//! tokengate — an API front door that checks the access token on every request.
//!
//! A request travels one way; each folder is one layer, and imports only point down:
//!
//! ```text
//! socket ─► server/  listener (accept loop, limits, timeouts, drain) · metrics
//!   └─► door/   service (the data plane's hyper service) ─► forward (upstream) or respond
//!         ├─► portal/  the client's page and OpenAPI document (/_tokengate/portal/…)
//!         └─► core/  gate (route → credential → verify → decide)  ◄── registry (compiled snapshot)
//!                      ├─ credential  zero-copy extraction from the header map
//!                      ├─ jwt         compact JWS parsing and claim checks
//!                      ├─ keys        HMAC / RSA keys parsed once
//!                      └─ cache       moka memo of verified tokens
//! admin/ (the API, one file per resource) ─► store/ (sqlite | postgres: rows, change log)
//!   └─► core/catalog + core/registry: each change compiles only what it touched
//! cluster (a node among many: LISTEN, heartbeat, catch up, resync) ─► admin/ ─► store/
//! usage (quota counts to and from the store, the live-node count) ─► core/registry, store/
//! app (the wiring of `serve`, above door/ and admin/) · cli/ · tools/ (jwt sign, demo, bench)
//! ```
//!
//! - [`core`]: the verification core; no I/O. Model, rules, routes, registry, credential, JWT,
//!   keys, tokens, cache, the gate's decision, rate limits, CIDR ranges, rejection reasons.
//! - [`server`]: what both listeners share: the HTTP/1.1 accept loop and the metrics.
//! - [`door`]: the data plane: the hyper service, the upstream proxy, responses, runtime layout.
//! - [`portal`]: the client portal: the client's page, its OpenAPI document, compiled-in assets.
//! - [`admin`]: the admin API (control plane): collections, clients, profiles; input checks.
//! - [`store`]: durable storage: SQLite (embedded) or PostgreSQL (many nodes), sealed secrets,
//!   the admin key.
//! - [`cluster`]: keeps one node of many in step with a PostgreSQL store.
//! - [`usage`]: syncs quota counts with the store every second; sets the live-node count.
//! - [`app`]: the wiring of `serve`: store, admin API, data plane and metrics on their listeners.
//! - [`cli`]: the command line (`serve`, `collection|client|profile`, `jwt sign`, `bench`).
//! - [`tools`]: client-side JWT signing, demo data, the embedded benchmark harness.

pub mod admin;
pub mod app;
pub mod cli;
pub mod cluster;
pub mod core;
pub mod door;
pub mod portal;
pub mod server;
pub mod store;
pub mod tools;
pub mod usage;
