//! tokengate — an API front door that checks the access token on every request.
//!
//! A request travels one way; each module does one job:
//!
//! ```text
//! socket ─► server (hyper plumbing, limits, timeouts) ─► door (the data plane's service)
//!              └─► gate (route → credential → verify → decide)   ◄── registry (compiled snapshot)
//!                     ├─ credential  zero-copy extraction from the header map
//!                     ├─ jwt         compact JWS parsing and claim checks
//!                     ├─ keys        HMAC / RSA keys parsed once
//!                     └─ cache       moka memo of verified tokens
//!              └─► forward (upstream proxy) or respond (fixed responses, JSON errors)
//! admin API ─► store (durable first) ─► registry snapshot
//! ```
//!
//! Verification core (no I/O): [`credential`], [`jwt`], [`keys`], [`cache`], [`gate`],
//! [`registry`], [`route`], [`ratelimit`], [`cidr`], [`token`], [`reject`], [`model`].
//! Edges (I/O): [`server`], [`door`], [`forward`], [`respond`], [`admin`], [`store`], [`metrics`],
//! [`layout`] (runtime per core or shared), [`app`] (wiring of `serve`), [`cli`] (the command line).
//! Tools: [`signing`] and [`jwt_sign`] (client-side JWT signing), [`demo`] (seed data),
//! [`bench`] (`tokengate bench`, the embedded benchmark harness).

pub mod admin;
pub mod app;
pub mod bench;
pub mod cache;
pub mod cidr;
pub mod cli;
pub mod credential;
pub mod demo;
pub mod door;
pub mod forward;
pub mod gate;
pub mod jwt;
pub mod jwt_sign;
pub mod keys;
pub mod layout;
pub mod metrics;
pub mod model;
pub mod ratelimit;
pub mod registry;
pub mod reject;
pub mod respond;
pub mod route;
pub mod server;
pub mod signing;
pub mod store;
pub mod token;
